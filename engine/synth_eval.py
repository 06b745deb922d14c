"""Scores that only synthetic worlds can give: dense depth error on static vs independently moving pixels, and
pose quality against the exact camera motion, for a checkpoint on a synthetic KITTI-format tree.

Shape legend: H, W truth (rendered) resolution; h, w network resolution; B batch.

Dense depth (per image, as the KITTI protocol does per image): the predicted disparity is resized bilinearly to the
rendered size, depth = 1 / disparity, median-scaled over all valid pixels (not sky, 1e-3 < depth < 80 m, Garg crop),
clamped to [1e-3, 80]; absolute relative errors are then summed separately over static and moving pixels
(the truth's moving mask) and averaged per pixel over the whole set (moving pixels are few and absent from many
frames, so a per-image mean would be dominated by a handful of pixels). The moving pixels are also split into oncoming
cars (negative speed in world.json) and cars driving the camera's way, whose monocular ambiguities differ.

Object motion (nets with the object-motion field): the field of every target frame towards the next one is compared
with the truth's displacement of the moving cars (world.json: cars translate along the street at `speed_z` m/s),
in the next camera's frame, at the network resolution. The field is brought to metres with the frame's camera
translation (|t_true| / |t_pred|, as the pose's length ratio does). `field_recall` = sum(pred . true) / sum(|true|^2)
over the moving pixels: the share of the cars' motion the field recovers (1 = all, 0 = none, < 0 = backwards);
`field_static` = mean |pred| (metres) over the other pixels, what leaks onto the static scene.
"""

from __future__ import annotations

import json

import numpy as np
import torch
import torch.nn.functional as F

from engine.evaluate import GARG_CROP, resize_to
from engine.pose_eval import load_frame, predict_motions
from model.nets import predict_depth, unwrap
from pipeline.intrinsics import resize_K
from pipeline.storage import join, read_bytes
from pipeline.synth.truth import Truth, load_truth, truth_path

_DENSE_SUMS = ("static_sum", "static_n", "moving_sum", "moving_n", "oncoming_sum", "oncoming_n")
_FIELD_SUMS = ("dot_sum", "true_sq_sum", "static_abs_sum", "static_n")


def _garg_mask(H: int, W: int) -> np.ndarray:
    m = np.zeros((H, W), bool)
    f = GARG_CROP
    m[int(f[0] * H) : int(f[1] * H), int(f[2] * W) : int(f[3] * W)] = True
    return m


def dense_depth_sums(pred_depth_hw: torch.Tensor, truth_depth_HW: np.ndarray, moving_HW: np.ndarray,
                     sky_HW: np.ndarray, *, oncoming_HW: np.ndarray | None = None,
                     max_depth: float = 80.0) -> dict[str, float]:
    """Sums of |gt - pred| / gt over the static and the moving valid pixels of one image (after median scaling), and
    over the moving pixels in `oncoming_HW` (cars driving towards the camera) when given."""
    gt = truth_depth_HW.astype(np.float64)
    valid = (~sky_HW) & (gt > 1e-3) & (gt < max_depth) & _garg_mask(*gt.shape)
    if not valid.any():
        return dict.fromkeys(_DENSE_SUMS, 0.0)
    pred = (1.0 / resize_to(1.0 / pred_depth_hw, gt.shape)).numpy()
    pred = np.clip(pred * np.median(gt[valid]) / np.median(pred[valid]), 1e-3, max_depth)
    err = np.abs(gt - pred) / np.maximum(gt, 1e-3)
    moving = valid & moving_HW
    static = valid & ~moving_HW
    oncoming = moving & (oncoming_HW if oncoming_HW is not None else False)
    return {"static_sum": float(err[static].sum()), "static_n": float(static.sum()),
            "moving_sum": float(err[moving].sum()), "moving_n": float(moving.sum()),
            "oncoming_sum": float(err[oncoming].sum()), "oncoming_n": float(oncoming.sum())}


def object_displacement_3HW(instance_HW: np.ndarray, speed_by_instance: dict[int, float], dt_s: float,
                             R_source_cam_to_world_33: np.ndarray) -> np.ndarray:
    """True object motion of each target pixel towards a source frame `dt_s` seconds later, in the source camera's
    axes (metres; 0 on the static scene): a car with speed v moves (0, 0, v dt) in the world (Z along the street)."""
    lut = np.zeros(max([0, *speed_by_instance]) + 1)
    for instance, speed in speed_by_instance.items():
        lut[instance] = speed
    speed_HW = np.where(instance_HW < len(lut), lut[np.clip(instance_HW, 0, len(lut) - 1)], 0.0)
    world_3 = np.array([0.0, 0.0, dt_s])
    cam_3 = R_source_cam_to_world_33.T @ world_3  # world -> source camera axes
    return cam_3[:, None, None] * speed_HW[None]


def field_sums(pred_3hw: np.ndarray, true_3hw: np.ndarray, moving_hw: np.ndarray, static_hw: np.ndarray) -> dict[str, float]:
    """Sums for field_recall (pred . true and |true|^2 over the moving pixels) and field_static (|pred| over the
    static ones) of one image."""
    dot = (pred_3hw * true_3hw).sum(axis=0)
    return {"dot_sum": float(dot[moving_hw].sum()), "true_sq_sum": float((true_3hw**2).sum(axis=0)[moving_hw].sum()),
            "static_abs_sum": float(np.linalg.norm(pred_3hw, axis=0)[static_hw].sum()),
            "static_n": float(static_hw.sum())}


def _speeds(root: str, drive: str) -> dict[int, float]:
    """Instance value (as in the truth's instance map) -> speed along the street (m/s) of the drive's world."""
    desc = json.loads(read_bytes(join(root, *drive.split("/"), "rmdepth_truth", "world.json")))
    return {int(b["instance"]): float(b["speed_z"]) for b in desc["boxes"] if b.get("speed_z", 0.0) != 0.0}


def _nearest(x_HW: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x_HW).astype(np.float32))[None, None]
    return F.interpolate(t, size=size_hw, mode="nearest")[0, 0].numpy()


def _drive_field_sums(nets: torch.nn.Module, images_F3hw: torch.Tensor, truths: list[Truth],
                      speeds: dict[int, float], *, batch_size: int) -> dict[str, float]:
    """field_sums over every frame of a drive that has a previous and a next frame."""
    h, w = images_F3hw.shape[-2:]
    sums = dict.fromkeys(_FIELD_SUMS, 0.0)
    targets = list(range(1, len(truths) - 1))
    for b0 in range(0, len(targets), batch_size):
        idx = targets[b0 : b0 + batch_size]
        frames = torch.stack([images_F3hw[[i - 1, i, i + 1]] for i in idx])
        K = torch.stack([_scaled_K(truths[i], h, w) for i in idx]).to(frames)
        out = nets(frames, K, 1.0)
        B = len(idx)
        field, T = out.motion_B3HW[B:].float().cpu().numpy(), out.T_B44[B:].float().cpu().numpy()
        for b, i in enumerate(idx):
            tgt, nxt = truths[i], truths[i + 1]
            true_T = np.linalg.inv(nxt.pose_cam_to_world) @ tgt.pose_cam_to_world
            pred_length = float(np.linalg.norm(T[b, :3, 3]))
            if pred_length < 1e-3:  # a standing (collapsed) pose gives no scale: the frame is left out
                continue
            metres = float(np.linalg.norm(true_T[:3, 3])) / pred_length
            instance = _nearest(tgt.instance_HW, (h, w)).astype(np.int64)
            moving = np.isin(instance, list(speeds))
            static = ~moving & (_nearest(tgt.sky_HW, (h, w)) < 0.5)
            true = object_displacement_3HW(instance, speeds, nxt.time_s - tgt.time_s, nxt.pose_cam_to_world[:3, :3])
            for k, v in field_sums(field[b] * metres, true, moving, static).items():
                sums[k] += v
    return sums


def _scaled_K(truth: Truth, h: int, w: int) -> torch.Tensor:
    """The rendered image's intrinsics at the network resolution."""
    H, W = truth.depth_HW.shape
    return torch.from_numpy(resize_K(truth.K_33, (W, H), (w, h))).float()


def _ratio(total: float, n: float) -> float:
    return total / n if n > 0 else float("nan")


@torch.no_grad()
def evaluate_synthetic(nets: torch.nn.Module, root: str, *, size_wh: tuple[int, int], drives: tuple[str, ...] = (),
                       batch_size: int = 8, device: str | torch.device = "cpu") -> dict[str, float]:
    """Dense depth errors (static / moving pixels) and pose quality of `nets` (RMDepthNets, eval mode is set here)
    on every image_02 frame of the synthetic KITTI tree `root` (all drives, or `drives`: "<date>/<drive>" names).

    Pose: for every pair of consecutive frames the predicted motion T_i->i+1 is compared with the true one (the
    drive's oxts through pykitti's chain, which the synthetic world writes exactly); the metrics are
    model.pose_metrics': 5-frame ATE (monodepth2), the standing camera's ATE on the same snippets, direction
    cosine, length ratio and rotation error. Object motion (nets with the field): field_recall and field_static
    (module docstring); NaN for rigid nets."""
    from model.pose_metrics import motions_from_poses, relative_pose_errors, snippet_ates
    from pipeline.sources.kitti_odometry import load_raw_drive, raw_drives

    was_training = nets.training
    nets.eval()
    sums = dict.fromkeys(_DENSE_SUMS, 0.0)
    ates, zero_ates, cos, ratio, rot = [], [], [], [], []
    fsums = dict.fromkeys(_FIELD_SUMS, 0.0)
    has_field = getattr(getattr(unwrap(nets), "motion", None), "object_levels", None) is not None
    try:
        for name in drives or raw_drives(root):
            drive = load_raw_drive(root, name)
            images = torch.from_numpy(np.stack([load_frame(f, size_wh) for f in drive.frame_urls])).to(device)
            truths = [load_truth(truth_path(f)) for f in drive.frame_urls]
            speeds = _speeds(root, name)
            oncoming_ids = [i for i, v in speeds.items() if v < 0]
            for i in range(0, len(images), batch_size):
                depth = predict_depth(nets, images[i : i + batch_size])[:, 0].cpu()
                for d, t in zip(depth, truths[i : i + batch_size], strict=True):
                    oncoming = np.isin(t.instance_HW, oncoming_ids)
                    for k, v in dense_depth_sums(d, t.depth_HW, t.moving_HW, t.sky_HW, oncoming_HW=oncoming).items():
                        sums[k] += v
            if has_field and len(images) >= 3:
                for k, v in _drive_field_sums(nets, images, truths, speeds, batch_size=batch_size).items():
                    fsums[k] += v
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
        "dense_abs_rel_moving": _ratio(sums["moving_sum"], sums["moving_n"]),
        "dense_abs_rel_moving_oncoming": _ratio(sums["oncoming_sum"], sums["oncoming_n"]),
        "dense_abs_rel_moving_same_direction": _ratio(sums["moving_sum"] - sums["oncoming_sum"],
                                                      sums["moving_n"] - sums["oncoming_n"]),
        "moving_pixel_fraction": sums["moving_n"] / max(sums["static_n"] + sums["moving_n"], 1.0),
        "pose_ate": float(np.nanmean(a)),
        "pose_ate_std": float(np.nanstd(a)),
        "pose_ate_zero_motion": float(np.nanmean(cat(zero_ates))),
        "pose_cosine": float(np.nanmean(cat(cos))),
        "pose_length_ratio": float(np.nanmean(cat(ratio))),
        "pose_rotation_error_deg": float(np.nanmean(cat(rot))),
        "pose_snippets": float(np.isfinite(a).sum()),
        "field_recall": _ratio(fsums["dot_sum"], fsums["true_sq_sum"]),
        "field_static": _ratio(fsums["static_abs_sum"], fsums["static_n"]),
    }

