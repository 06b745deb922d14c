"""Ego-motion metrics: the ONE implementation used by in-training validation and by `rmdepth eval-pose`.

Shape legend: N motions (frame i -> i+1), K points of a snippet, 4x4 rigid transforms.

Conventions: a "motion" T_i maps points of frame i's camera into frame i+1's camera (monodepth2's evaluate_pose.py
stores exactly these, `pred_poses[i]`); ground-truth motions come from camera-to-world poses G as
inv(G_{i+1}) @ G_i (monodepth2 writes the same as `inv(inv(G_i) @ G_{i+1})`).

ATE follows monodepth2's evaluate_pose.py: for each start frame i, the snippet's next (up to) `track_length - 1`
motions are accumulated from the identity (`dump_xyz`: cam_to_world = cam_to_world @ T, keeping translations), the
first points are aligned, the prediction is scaled by the least-squares factor, and the snippet's error is
sqrt(sum of squared point errors) / number of points. Mean and std over snippets.
"""

from __future__ import annotations

import numpy as np


def dump_xyz(motions_N44: np.ndarray) -> np.ndarray:
    """monodepth2 `dump_xyz`: accumulated positions (N+1, 3), starting at the origin."""
    cam_to_world = np.eye(4)
    xyz = [cam_to_world[:3, 3].copy()]
    for T in motions_N44:
        cam_to_world = cam_to_world @ T
        xyz.append(cam_to_world[:3, 3].copy())
    return np.array(xyz)


def compute_ate(gt_xyz_K3: np.ndarray, pred_xyz_K3: np.ndarray) -> float:
    """monodepth2 `compute_ate`: align the first points, least-squares scale, sqrt(sum sq. error) / K.
    A prediction of all-zero motion has no scale to fit and is compared unscaled (scale 0 gives the same)."""
    pred = pred_xyz_K3 + (gt_xyz_K3[0] - pred_xyz_K3[0])[None]
    denom = float(np.sum(pred**2))
    scale = float(np.sum(gt_xyz_K3 * pred)) / denom if denom > 0 else 0.0
    err = pred * scale - gt_xyz_K3
    return float(np.sqrt(np.sum(err**2)) / gt_xyz_K3.shape[0])


def snippet_ates(pred_N44: np.ndarray, gt_N44: np.ndarray, *, track_length: int = 5) -> np.ndarray:
    """ATE of every snippet: starts i = 0 .. N-1 (frames 0 .. N-1 of N+1 frames), motions [i, i + track_length - 1)
    (fewer at the end, as monodepth2's slicing gives). Returns (N,) float64."""
    pred_N44, gt_N44 = _check_pair(pred_N44, gt_N44)
    if track_length < 2:
        raise ValueError(f"track_length must be >= 2, got {track_length}")
    n = len(gt_N44)
    return np.array([
        compute_ate(dump_xyz(gt_N44[i : i + track_length - 1]), dump_xyz(pred_N44[i : i + track_length - 1]))
        for i in range(n)
    ])


def translation_cosine(pred_t_N3: np.ndarray, gt_t_N3: np.ndarray, *, min_length: float = 1e-3) -> np.ndarray:
    """Cosine between predicted and true translation directions, per motion (NaN where the truth moves less than
    `min_length` metres or the prediction is exactly zero)."""
    p = np.asarray(pred_t_N3, dtype=np.float64)
    g = np.asarray(gt_t_N3, dtype=np.float64)
    pn, gn = np.linalg.norm(p, axis=-1), np.linalg.norm(g, axis=-1)
    ok = (gn >= min_length) & (pn > 0)
    out = np.full(len(p), np.nan)
    out[ok] = np.sum(p[ok] * g[ok], axis=-1) / (pn[ok] * gn[ok])
    return out


def rotation_angle_deg(R_N33: np.ndarray) -> np.ndarray:
    """Rotation angle of each matrix in degrees."""
    cos = (np.trace(R_N33, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def relative_pose_errors(pred_N44: np.ndarray, gt_N44: np.ndarray) -> dict[str, np.ndarray]:
    """Per-motion errors: rotation error (deg, angle of inv(gt) @ pred), translation length ratio |t_pred| / |t_gt|
    (the scale a monocular net picked; NaN where the truth does not move), direction cosine."""
    pred_N44, gt_N44 = _check_pair(pred_N44, gt_N44)
    rel = np.linalg.inv(gt_N44) @ pred_N44
    gn = np.linalg.norm(gt_N44[:, :3, 3], axis=-1)
    ratio = np.where(gn >= 1e-3, np.linalg.norm(pred_N44[:, :3, 3], axis=-1) / np.maximum(gn, 1e-12), np.nan)
    return {
        "rotation_error_deg": rotation_angle_deg(rel[:, :3, :3]),
        "length_ratio": ratio,
        "cosine": translation_cosine(pred_N44[:, :3, 3], gt_N44[:, :3, 3]),
    }


def _trajectory_lengths(poses_N44: np.ndarray) -> np.ndarray:
    steps = np.linalg.norm(np.diff(poses_N44[:, :3, 3], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(steps)])


def kitti_odometry_errors(
    pred_poses_N44: np.ndarray, gt_poses_N44: np.ndarray, *, lengths: tuple[float, ...] = (100, 200, 300, 400, 500,
                                                                                          600, 700, 800), step: int = 10
) -> dict[str, float]:
    """KITTI odometry devkit's relative errors of a whole trajectory (camera-to-world poses, predicted ones already
    aligned/scaled by the caller): for segments of each length starting every `step` frames, translation error in
    % and rotation error in deg/100 m, averaged over all segments. Lengths longer than the trajectory are skipped;
    returns NaN and 0 segments when none fits."""
    gt = np.asarray(gt_poses_N44, dtype=np.float64)
    pred = np.asarray(pred_poses_N44, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"{len(pred)} predicted poses but {len(gt)} ground-truth poses")
    dist = _trajectory_lengths(gt)
    t_err, r_err = [], []
    for first in range(0, len(gt), step):
        for length in lengths:
            last = int(np.searchsorted(dist, dist[first] + length, side="right"))  # devkit: first dist > start + len
            if last >= len(gt):
                continue
            pose_delta_gt = np.linalg.inv(gt[first]) @ gt[last]
            pose_delta_pred = np.linalg.inv(pred[first]) @ pred[last]
            err = np.linalg.inv(pose_delta_pred) @ pose_delta_gt
            t_err.append(np.linalg.norm(err[:3, 3]) / length)
            r_err.append(np.radians(rotation_angle_deg(err[None, :3, :3])[0]) / length)
    if not t_err:
        return {"rpe_trans_pct": float("nan"), "rpe_rot_deg_per_100m": float("nan"), "rpe_segments": 0.0}
    return {
        "rpe_trans_pct": float(np.mean(t_err) * 100.0),
        "rpe_rot_deg_per_100m": float(np.degrees(np.mean(r_err)) * 100.0),
        "rpe_segments": float(len(t_err)),
    }


def motions_from_poses(poses_N44: np.ndarray) -> np.ndarray:
    """Camera-to-world poses (N+1) -> motions (N): T_i = inv(G_{i+1}) @ G_i (maps frame i points into frame i+1)."""
    G = np.asarray(poses_N44, dtype=np.float64)
    return np.linalg.inv(G[1:]) @ G[:-1]


def _check_pair(pred_N44: np.ndarray, gt_N44: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_N44, dtype=np.float64)
    gt = np.asarray(gt_N44, dtype=np.float64)
    if pred.ndim != 3 or pred.shape[1:] != (4, 4) or gt.ndim != 3 or gt.shape[1:] != (4, 4):
        raise ValueError(f"motions must be N x 4 x 4, got {pred.shape} and {gt.shape}")
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted motions but {len(gt)} ground-truth motions")
    if not np.all(np.isfinite(pred)):
        raise ValueError("predicted motions contain NaN or infinite values")
    return pred, gt
