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

from engine.evaluate import (
    EvalProtocol,
    TooManyBadFramesError,
    accumulate,
    constant_baseline_batch,
    evaluate_batch,
)
from engine.run_config import MAX_BAD_FRAMES
from engine.runtime import Runtime
from model.metrics import MetricAccumulator
from model.nets import unwrap


def validate(
    nets: nn.Module,
    batches: Iterable,
    runtime: Runtime,
    protocol: EvalProtocol,
    *,
    max_batches: int = 0,
    max_bad_frames: int = MAX_BAD_FRAMES,
) -> dict[str, float]:
    """Metrics over all ranks' val batches -> {"val_abs_rel", ..., "val_a3", "val_baseline_abs_rel", ...,
    "val_images", "val_skipped"}.

    `batches` yields pipeline.batch.EvalBatch; every rank must see the same number of batches (the eval loader
    pads), `max_batches` > 0 caps that number on every rank alike. Damaged frames the loader skipped are logged
    (one line each), counted over all ranks in `val_skipped`, and past `max_bad_frames` stop the run
    (TooManyBadFramesError on every rank alike, naming the last one's shard).
    """
    depth_net = unwrap(nets).depth
    assert isinstance(depth_net, nn.Module)
    was_training = depth_net.training
    depth_net.eval()
    acc, base = MetricAccumulator(), MetricAccumulator()
    skipped: list = []
    try:
        for i, batch in enumerate(batches):
            if max_batches and i >= max_batches:
                break
            batch = batch.to(runtime.device)
            skipped.extend(batch.skipped)
            acc = acc.merge(accumulate(evaluate_batch(depth_net, batch, protocol)))
            base = base.merge(accumulate(constant_baseline_batch(batch, protocol)))
    finally:
        depth_net.train(was_training)
    local = torch.cat([acc.to_tensor(), base.to_tensor()])
    n = local.numel() // 2
    local = torch.cat([local, local.new_tensor([float(len(skipped))])])
    total = runtime.all_reduce_sum(local.to(runtime.device)).cpu()
    acc, base = MetricAccumulator.from_tensor(total[:n]), MetricAccumulator.from_tensor(total[n : 2 * n])
    num_skipped = int(total[-1])
    if num_skipped > max_bad_frames:
        where = f"; the last on this rank: {skipped[-1].shard}: sample {skipped[-1].key!r}" if skipped else ""
        raise TooManyBadFramesError(
            f"validation: {num_skipped} damaged frames in the val shard set, more than max_bad_frames={max_bad_frames}"
            f"{where}")
    if acc.count == 0:
        raise ValueError("validation: the val shard set yielded no valid images")
    out = {f"val_{k}": v for k, v in acc.means().items()}
    out.update({f"val_baseline_{k}": v for k, v in base.means().items()})
    out["val_images"] = float(acc.count)
    out["val_skipped"] = float(num_skipped)
    return out


POSE_SUMS = ("triplets", "ate", "ate_sq", "ate_zero", "motions", "cosine", "cosine_n", "length_ratio", "ratio_n",
             "rot_err", "t_sum_x", "t_sum_y", "t_sum_z", "t_sq")


def pose_sums(pred_T_BS44: torch.Tensor, gt_T_BS44: torch.Tensor, valid_B: torch.Tensor) -> torch.Tensor:
    """Sums of the pose metrics over the valid triplets of a batch, float64 in POSE_SUMS order (they add up across
    batches and ranks). Both motion tensors are target -> (prev, tgt, next), like Batch.gt_T_BS44."""
    import numpy as np

    from model.geometry import invert_pose
    from model.pose_metrics import compute_ate, dump_xyz, relative_pose_errors

    sums = dict.fromkeys(POSE_SUMS, 0.0)
    keep = valid_B.bool() & torch.isfinite(gt_T_BS44).flatten(1).all(dim=1)
    for pred, gt in zip(pred_T_BS44[keep].double().cpu(), gt_T_BS44[keep].double().cpu(), strict=True):
        # time-ordered motions prev -> tgt -> next (monodepth2's convention) for a 3-frame snippet
        p = torch.stack([invert_pose(pred[0]), pred[2]]).numpy()
        g = torch.stack([invert_pose(gt[0]), gt[2]]).numpy()
        gt_xyz = dump_xyz(g)
        sums["triplets"] += 1
        ate = compute_ate(gt_xyz, dump_xyz(p))
        sums["ate"] += ate
        sums["ate_sq"] += ate * ate
        sums["ate_zero"] += compute_ate(gt_xyz, dump_xyz(np.tile(np.eye(4), (2, 1, 1))))
        err = relative_pose_errors(p, g)
        sums["motions"] += 2
        sums["rot_err"] += float(err["rotation_error_deg"].sum())
        for name, n in (("cosine", "cosine_n"), ("length_ratio", "ratio_n")):
            vals = err[name][np.isfinite(err[name])]
            sums[name] += float(vals.sum())
            sums[n] += len(vals)
        t = pred[2, :3, 3].numpy()
        sums["t_sum_x"], sums["t_sum_y"], sums["t_sum_z"] = (sums["t_sum_x"] + t[0], sums["t_sum_y"] + t[1],
                                                             sums["t_sum_z"] + t[2])
        sums["t_sq"] += float(t @ t)
    return torch.tensor([sums[k] for k in POSE_SUMS], dtype=torch.float64)


def pose_means(sums_P: torch.Tensor) -> dict[str, float]:
    """POSE_SUMS -> val_pose_* metrics: 3-frame ATE (mean, std) and the standing camera's ATE on the same snippets,
    direction cosine, length ratio (the scale the net picked), rotation error (deg), and the spread of the
    target->next translation across the set relative to its mean (the norm of its per-axis standard deviation over
    the norm of its mean; ~0 = the pose net outputs a constant; the speed changes of a drive give ~0.1)."""
    s = dict(zip(POSE_SUMS, sums_P.tolist(), strict=True))
    n = max(s["triplets"], 1.0)
    mean_t = torch.tensor([s["t_sum_x"], s["t_sum_y"], s["t_sum_z"]], dtype=torch.float64) / n
    nan = float("nan")
    return {
        "val_pose_ate": s["ate"] / n,
        "val_pose_ate_std": max(s["ate_sq"] / n - (s["ate"] / n) ** 2, 0.0) ** 0.5,
        "val_pose_ate_zero_motion": s["ate_zero"] / n,
        "val_pose_cosine": s["cosine"] / s["cosine_n"] if s["cosine_n"] else nan,
        "val_pose_length_ratio": s["length_ratio"] / s["ratio_n"] if s["ratio_n"] else nan,
        "val_pose_rotation_error_deg": s["rot_err"] / max(s["motions"], 1.0),
        "val_pose_spread": max(s["t_sq"] / n - float(mean_t @ mean_t), 0.0) ** 0.5 / max(float(mean_t.norm()), 1e-12),
        "val_pose_triplets": s["triplets"],
    }


def validate_pose(nets: nn.Module, batches: Iterable, runtime: Runtime, *, max_batches: int = 0) -> dict[str, float]:
    """Pose metrics over all ranks' triplets (Batch with gt_T_BS44 and valid_B), each triplet counted once; the
    nets run in eval mode on the un-augmented frames. {} when no triplet carries a true motion."""
    from model.geometry import invert_pose
    from model.nets import predict_ego_motion

    module = getattr(nets, "module", nets)
    was_training = module.training
    module.eval()
    total = torch.zeros(len(POSE_SUMS), dtype=torch.float64)
    try:
        for i, batch in enumerate(batches):
            if max_batches and i >= max_batches:
                break
            if batch.gt_T_BS44 is None:
                continue
            batch = batch.to(runtime.device)
            prev, tgt, nxt = batch.frames_BSCHW.unbind(1)
            B = tgt.shape[0]
            ordered = predict_ego_motion(module, torch.cat([prev, tgt]), torch.cat([tgt, nxt]))
            eye = torch.eye(4, dtype=ordered.dtype, device=ordered.device).expand(B, 4, 4)
            pred = torch.stack([invert_pose(ordered[:B]), eye, ordered[B:]], dim=1)
            valid = batch.valid_B if batch.valid_B is not None else torch.ones(B, dtype=torch.bool)
            total += pose_sums(pred, batch.gt_T_BS44, valid)
    finally:
        module.train(was_training)
    total = runtime.all_reduce_sum(total.to(runtime.device)).cpu()
    return pose_means(total) if total[0] > 0 else {}
