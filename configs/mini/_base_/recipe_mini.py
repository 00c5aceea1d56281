# The normalisation of the mini recipe, shared by every mini row. Trained from scratch at batch 4,
# BatchNorm's statistics are too noisy (a RetinaNet's AP spread 9 points between two seeds), so the
# backbone, the FPN and the convolutional head towers use GroupNorm, the from-scratch recipe of He,
# Girshick and Dollar, "Rethinking ImageNet Pre-training" (ICCV 2019), that mmdet ships as
# configs/scratch/. 16 groups keep at least 2 channels per group in the 32-channel first stage.
mini_norm_cfg = dict(type='GN', num_groups=16, requires_grad=True)
# Bumped with every change of the mini recipe: records of another version never mix into a table.
mini_recipe_version = 4
