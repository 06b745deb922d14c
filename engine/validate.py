"""In-training validation: every rank scores its part of the val shard set with the single metrics implementation
(`engine.evaluate` -> `model.metrics`); per-image sums and counts are all-reduced, so each image counts exactly once
(padding samples added by the eval loader have valid=False and are skipped).

Also scores the median-scaled constant-depth baseline on the same images (`val_baseline_*`), the floor any model
must beat.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from engine.evaluate import EvalProtocol, accumulate, constant_baseline_batch, evaluate_batch
from engine.runtime import Runtime
from model.metrics import MetricAccumulator


def validate(
    nets: nn.Module,
    batches: Iterable,
    runtime: Runtime,
    protocol: EvalProtocol,
    *,
    max_batches: int = 0,
) -> dict[str, float]:
    """Metrics over all ranks' val batches -> {"val_abs_rel", ..., "val_a3", "val_baseline_abs_rel", ..., "val_images"}.

    `batches` yields pipeline.batch.EvalBatch; every rank must see the same number of batches (the eval loader
    pads), `max_batches` > 0 caps that number on every rank alike.
    """
    module = getattr(nets, "module", nets)
    depth_net = module.depth
    was_training = depth_net.training
    depth_net.eval()
    acc, base = MetricAccumulator(), MetricAccumulator()
    try:
        for i, batch in enumerate(batches):
            if max_batches and i >= max_batches:
                break
            batch = batch.to(runtime.device)
            acc = acc.merge(accumulate(evaluate_batch(depth_net, batch, protocol)))
            base = base.merge(accumulate(constant_baseline_batch(batch, protocol)))
    finally:
        depth_net.train(was_training)
    local = torch.cat([acc.to_tensor(), base.to_tensor()])
    total = runtime.all_reduce_sum(local.to(runtime.device)).cpu()
    n = local.numel() // 2
    acc, base = MetricAccumulator.from_tensor(total[:n]), MetricAccumulator.from_tensor(total[n:])
    if acc.count == 0:
        raise ValueError("validation: the val shard set yielded no valid images")
    out = {f"val_{k}": v for k, v in acc.means().items()}
    out.update({f"val_baseline_{k}": v for k, v in base.means().items()})
    out["val_images"] = float(acc.count)
    return out
