import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmdet_imbalance.models.data_preprocessor import drop_degenerate_gt


def _sample(boxes):
    sample = DetDataSample(metainfo=dict(img_shape=(32, 32)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32),
                                       labels=torch.arange(len(boxes)))
    return sample


def test_degenerate_boxes_move_to_ignored():
    sample = _sample([[0, 0, 10, 10], [5, 5, 5, 20], [1, 1, 30, 1.5], [2, 2, 4, 4]])
    assert drop_degenerate_gt([sample], min_size=1.0) == 2
    assert sample.gt_instances.bboxes.tolist() == [[0, 0, 10, 10], [2, 2, 4, 4]]
    assert sample.gt_instances.labels.tolist() == [0, 3]
    assert sample.ignored_instances.labels.tolist() == [1, 2]


def test_preprocessor_filters_only_in_training():
    pre = MODELS.build(dict(type='BoxFilterDetDataPreprocessor'))
    for training, kept in ((True, 1), (False, 2)):
        data = dict(inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)],
                    data_samples=[_sample([[0, 0, 10, 10], [4, 4, 4, 9]])])
        out = pre(data, training)
        assert len(out['data_samples'][0].gt_instances) == kept
