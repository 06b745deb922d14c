"""Scores that only synthetic worlds can give: dense depth error on static vs independently moving pixels, and
pose quality against the exact camera motion, for a checkpoint on a synthetic KITTI-format tree.

Shape legend: H, W truth (rendered) resolution; h, w network resolution; B batch.

Dense depth (per image, as the KITTI protocol does per image): the predicted disparity is resized bilinearly to the
rendered size, depth = 1 / disparity, median-scaled over all valid pixels (not sky, 1e-3 < depth < 80 m, Garg crop),
clamped to [1e-3, 80]; absolute relative errors are then summed separately over static and moving pixels
(the truth's moving mask) and averaged per pixel over the whole set (moving pixels are few and absent from many
frames, so a per-image mean would be dominated by a handful of pixels).
"""

from __future__ import annotations

import numpy as np
import torch

from engine.evaluate import GARG_CROP, resize_to
from engine.pose_eval import load_frame, predict_motions
from model.nets import predict_depth
from pipeline.synth.truth import load_truth, truth_path


def _garg_mask(H: int, W: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    f = GARG_CROP
    m[int(f[0] * H) : int(f[1] * H), int(f[2] * W) : int(f[3] * W)] = True
    return m


def dense_depth_sums(pred_depth_hw: torch.Tensor, truth_depth_HW: np.ndarray, moving_HW: np.ndarray,
                     sky_HW: np.ndarray, *, max_depth: float = 80.0) -> dict[str, float]:
    """Sums of |gt - pred| / gt over the static and the moving valid pixels of one image (after median scaling)."""
    gt = truth_depth_HW.astype(np.float64)
    valid = (~sky_HW) & (gt > 1e-3) & (gt < max_depth) & _garg_mask(*gt.shape)
    if not valid.any():
        return {"static_sum": 0.0, "static_n": 0.0, "moving_sum": 0.0, "moving_n": 0.0}
    pred = (1.0 / resize_to(1.0 / pred_depth_hw, gt.shape)).numpy()
    pred = np.clip(pred * np.median(gt[valid]) / np.median(pred[valid]), 1e-3, max_depth)
    err = np.abs(gt - pred) / np.maximum(gt, 1e-3)
    moving = valid & moving_HW
    static = valid & ~moving_HW
    return {"static_sum": float(err[static].sum()), "static_n": float(static.sum()),
            "moving_sum": float(err[moving].sum()), "moving_n": float(moving.sum())}


@torch.no_grad()
def evaluate_synthetic(nets: torch.nn.Module, root: str, *, size_wh: tuple[int, int], drives: tuple[str, ...] = (),
                       batch_size: int = 8, device: str | torch.device = "cpu") -> dict[str, float]:
    """Dense depth errors (static / moving pixels) and pose quality of `nets` (RMDepthNets, eval mode is set here)
    on every image_02 frame of the synthetic KITTI tree `root` (all drives, or `drives`: "<date>/<drive>" names).

    Pose: for every pair of consecutive frames the predicted motion T_i->i+1 is compared with the true one (the
    drive's oxts through pykitti's chain, which the synthetic world writes exactly); the metrics are
    model.pose_metrics': 5-frame ATE (monodepth2), the standing camera's ATE on the same snippets, direction
    cosine, length ratio and rotation error."""
    from model.pose_metrics import motions_from_poses, relative_pose_errors, snippet_ates
    from pipeline.sources.kitti_odometry import load_raw_drive, raw_drives

    was_training = nets.training
    nets.eval()
    sums = {"static_sum": 0.0, "static_n": 0.0, "moving_sum": 0.0, "moving_n": 0.0}
    ates, zero_ates, cos, ratio, rot = [], [], [], [], []
    try:
        for name in drives or raw_drives(root):
            drive = load_raw_drive(root, name)
            images = torch.from_numpy(np.stack([load_frame(f, size_wh) for f in drive.frame_urls])).to(device)
            truths = [load_truth(truth_path(f)) for f in drive.frame_urls]
            for i in range(0, len(images), batch_size):
                depth = predict_depth(nets, images[i : i + batch_size])[:, 0].cpu()
                for d, t in zip(depth, truths[i : i + batch_size], strict=True):
                    for k, v in dense_depth_sums(d, t.depth_HW, t.moving_HW, t.sky_HW).items():
                        sums[k] += v
            if len(images) < 2:
                continue
            pred = predict_motions(nets, drive.frame_urls, size_wh=size_wh, batch_size=batch_size, device=device)
            gt = motions_from_poses(drive.poses_F44)
            ates.append(snippet_ates(pred, gt))
            zero_ates.append(snippet_ates(np.tile(np.eye(4), (len(gt), 1, 1)), gt))
            err = relative_pose_errors(pred, gt)
            cos.append(err["cosine"])
            ratio.append(err["length_ratio"])
            rot.append(err["rotation_error_deg"])
    finally:
        nets.train(was_training)
    cat = (lambda xs: np.concatenate(xs) if xs else np.array([np.nan]))  # noqa: E731
    a = cat(ates)
    return {
        "dense_abs_rel_static": sums["static_sum"] / max(sums["static_n"], 1.0),
        "dense_abs_rel_moving": sums["moving_sum"] / max(sums["moving_n"], 1.0) if sums["moving_n"] else float("nan"),
        "moving_pixel_fraction": sums["moving_n"] / max(sums["static_n"] + sums["moving_n"], 1.0),
        "pose_ate": float(np.nanmean(a)),
        "pose_ate_std": float(np.nanstd(a)),
        "pose_ate_zero_motion": float(np.nanmean(cat(zero_ates))),
        "pose_cosine": float(np.nanmean(cat(cos))),
        "pose_length_ratio": float(np.nanmean(cat(ratio))),
        "pose_rotation_error_deg": float(np.nanmean(cat(rot))),
        "pose_snippets": float(np.isfinite(a).sum()),
    }

