"""Worker of tests/engine/test_distributed_equivalence.py: one rank of a 2-rank gloo group.

    python tests/engine/dist_equivalence.py --rank R --world-size 2 --store DIR --out FILE

For every row (the mini configs, plus AP Loss with ``gather_across_ranks=True``), rank 0 first
computes, with no process group, the first training step of the row's detector on a fixed batch of
4 images and on each half of it (images 0-1 and 2-3). Then both ranks join a process group (one
per row, on a file store), each takes its half of the batch, and runs the same first step; the
gradient of every loss component is averaged over the ranks, which is what DDP does with it.
Every step starts from the same weights and the same random state, so the samplers of the
two-stage rows draw the same numbers on rank r as in the single-process step on half r.

Rank 0 writes, per row and loss component, the four values (2 ranks: mean over ranks; batch 4;
half 0; half 1), each rank's value, and the Gram matrix of the four gradients (2 ranks: averaged
over ranks) in float64, from which the test derives the distance between any of them (or any
linear combination) without holding the gradients; and, per rank, the model's small buffers after
the step, the Sampling-Free priors the ranks resolved and how many times each rank computed the
training set's statistics.
"""
import argparse
import copy
import json
import os
import os.path as osp
import random
import sys

import numpy as np
import torch
import torch.distributed as torch_dist

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GATHER = 'ap-loss@gather'
SEED = 1
# Different numbers of objects per image, so that the two halves have different numbers of
# positives: a per-rank normaliser then differs from the batch's.
NUM_ITEMS = [1, 3, 2, 6]
IMAGE_SIZE = 128
# Buffers up to this size are reported (state such as aLRP's sums, ResObj's EMA, GHM-C's bins).
MAX_BUFFER = 64


def row_configs():
    """``{key: (config path, cfg options)}`` of every mini row, and AP Loss ranked across ranks."""
    from mmdet_imbalance.table.rows import ROWS
    rows = {row.key: (osp.join(REPO, row.configs['mini']), {}) for row in ROWS
            if 'mini' in row.configs}
    rows[GATHER] = (rows['ap-loss'][0], {'model.bbox_head.gather_across_ranks': True})
    return rows


def build(config, options):
    """The row's detector, from the same seed on every rank and in every step. The pretrained
    backbone is left out: what is compared does not depend on the starting weights."""
    from mmdet_imbalance.engine import resolve_auto_priors
    from mmdet_imbalance.testing import load_config
    from mmdet.registry import MODELS
    cfg = load_config(config)
    cfg.merge_from_dict({'model.backbone.init_cfg': None, **options})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    resolve_auto_priors(model, cfg)
    model.init_weights()
    for module in model.modules():
        # What ALRPSelfBalanceHook does before training: the self-balance sums accumulate.
        if hasattr(module, 'set_self_balance_period') and module.sb_period is None:
            module.set_self_balance_period(1000)
    return model.train()


def the_batch(model):
    from mmdet_imbalance.testing import demo_batch
    return demo_batch(model, batch_size=4, image_size=IMAGE_SIZE, num_items=NUM_ITEMS, seed=3)


def half(batch, index):
    part = slice(2 * index, 2 * index + 2)
    return dict(inputs=batch['inputs'][part], data_samples=batch['data_samples'][part])


def first_step(model, batch):
    """``{component: (value, flat gradient)}`` of one forward on ``batch`` from a fixed random
    state; the components are the loss entries mmengine's ``parse_losses`` sums."""
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    losses = model(**copy.deepcopy(batch), mode='loss')
    params = [p for p in model.parameters() if p.requires_grad]
    out = {}
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        total = sum(v.sum() for v in value) if isinstance(value, (list, tuple)) else value.sum()
        grads = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                          for g, p in zip(grads, params)])
        out[key] = (float(total), flat.double())
    return out


def small_buffers(model):
    return {name: buf.detach().double().reshape(-1).tolist()
            for name, buf in model.named_buffers() if buf.numel() <= MAX_BUFFER}


def priors(model):
    """The Sampling-Free priors the heads resolved (``prior_prob='auto'``)."""
    heads = [getattr(model, 'bbox_head', None), getattr(model, 'rpn_head', None)]
    return [float(h.resolved_prior) for h in heads
            if getattr(h, 'prior_prob', None) == 'auto' and h.resolved_prior is not None]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--rank', type=int, required=True)
    parser.add_argument('--world-size', type=int, default=2)
    parser.add_argument('--store', required=True, help='folder for the file stores')
    parser.add_argument('--out', required=True)
    parser.add_argument('--rows', help='comma list of row keys (default: all)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    from mmdet.utils import register_all_modules

    import mmdet_imbalance  # noqa: F401
    from mmdet_imbalance.engine import sampling_free_hook
    register_all_modules(init_default_scope=True)
    # Count this rank's passes over the training set: the prior must be computed once, on rank 0.
    stats_calls = []
    compute = sampling_free_hook._compute_stats
    sampling_free_hook._compute_stats = lambda *a, **k: stats_calls.append(1) or compute(*a, **k)

    rows = row_configs()
    keys = args.rows.split(',') if args.rows else list(rows)
    report = {}
    for index, key in enumerate(keys):
        config, options = rows[key]
        reference = {}
        if args.rank == 0:
            model = build(config, options)
            batch = the_batch(model)
            for name, part in (('b4', batch), ('h0', half(batch, 0)), ('h1', half(batch, 1))):
                step_model = copy.deepcopy(model)
                reference[name] = (first_step(step_model, part), small_buffers(step_model))
            reference_priors = priors(model)
        before = len(stats_calls)
        torch_dist.init_process_group('gloo', init_method=f'file://{args.store}/{index}',
                                      rank=args.rank, world_size=args.world_size)
        model = build(config, options)
        step = first_step(model, half(the_batch(model), args.rank))
        values = {}
        for name, (value, grad) in step.items():
            per_rank = [torch.zeros(1, dtype=torch.float64) for _ in range(args.world_size)]
            torch_dist.all_gather(per_rank, torch.tensor([value], dtype=torch.float64))
            torch_dist.all_reduce(grad)
            values[name] = ([float(v) for v in per_rank], grad / args.world_size)
        state = [None] * args.world_size
        torch_dist.all_gather_object(
            state, dict(buffers=small_buffers(model), priors=priors(model),
                        stats_calls=len(stats_calls) - before))
        torch_dist.destroy_process_group()
        if args.rank != 0:
            continue
        components = {}
        for name, (value, grad) in values.items():
            vectors = [grad] + [reference[k][0][name][1] for k in ('b4', 'h0', 'h1')]
            stacked = torch.stack(vectors)
            components[name] = dict(
                ranks=value, values=[sum(value) / len(value)] + [
                    reference[k][0][name][0] for k in ('b4', 'h0', 'h1')],
                gram=(stacked @ stacked.T).tolist())
        report[key] = dict(components=components, ranks=state, priors=reference_priors,
                           buffers={k: reference[k][1] for k in ('b4', 'h0', 'h1')})
        print(f'{key}: done', flush=True)
    if args.rank == 0:
        with open(args.out, 'w') as f:
            json.dump(report, f)


if __name__ == '__main__':
    sys.path.insert(0, REPO)
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    main()
