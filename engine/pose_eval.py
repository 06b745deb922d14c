"""Ego-motion evaluation: a checkpoint's frame-to-frame motions, scored as the field does it.

Shape legend: F frames of a sequence, N = F - 1 motions (frame pairs), S snippets, B batch, H x W network input.

Motions are monodepth2's `pred_poses` entries: T_i maps points of frame i's camera into frame i+1's
(model.nets.predict_ego_motion(frame_i, frame_i+1)). Scores (model.pose_metrics, the one implementation):
  - monodepth2 evaluate_pose.py: ATE of every 5-frame snippet (starts 0..F-2, up to 4 motions accumulated from the
    identity, first point aligned, least-squares scale), mean and std over snippets;
  - per motion: rotation error (deg), direction cosine of the translations, |t_pred| / |t_gt| (the net's scale);
  - whole trajectory: predicted poses chained from the motions, scaled by the least-squares factor of their
    positions, ATE RMSE (m), and the KITTI odometry devkit's relative errors (% and deg/100 m over segments of
    100..800 m starting every 10 frames);
  - the same numbers for a standing camera (all motions the identity) as a baseline. monodepth2's compute_ate
    divides by zero there; model.pose_metrics gives it scale 0, i.e. the distance of the true points from the start.
No Ray: jobs/eval_pose.py distributes `predict_part` over contiguous pair ranges and calls `score_sequence`.
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from model.pose_metrics import (
    kitti_odometry_errors,
    motions_from_poses,
    relative_pose_errors,
    snippet_ates,
)
from pipeline import storage

DEVKIT_LENGTHS = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0)


@dataclass(frozen=True, kw_only=True)
class PoseProtocol:
    """How motions are scored (defaults: monodepth2's ATE and the KITTI odometry devkit)."""

    track_length: int = 5
    """Frames per ATE snippet (monodepth2: 5, i.e. up to 4 motions)."""
    rpe_lengths: tuple[float, ...] = DEVKIT_LENGTHS
    """Segment lengths (m) of the devkit's relative errors; segments longer than a trajectory are skipped."""
    rpe_step: int = 10
    """A devkit segment starts every `rpe_step` frames."""

    def __post_init__(self) -> None:
        if self.track_length < 2:
            raise ValueError(f"track_length must be >= 2, got {self.track_length}")
        if not self.rpe_lengths or any(not np.isfinite(v) or v <= 0 for v in self.rpe_lengths):
            raise ValueError(f"rpe_lengths must be positive metres, got {self.rpe_lengths}")
        if self.rpe_step < 1:
            raise ValueError(f"rpe_step must be >= 1, got {self.rpe_step}")

    DESCRIPTIVE: ClassVar[tuple[str, ...]] = ("name", "ate")
    """Keys `settings` records beside the fields (fixed descriptions)."""

    def settings(self) -> dict[str, Any]:
        return {"name": "kitti-odometry-pose", "ate": "monodepth2 evaluate_pose.py (snippets, first point aligned, "
                "least-squares scale)", **dataclasses.asdict(self)}


# ------------------------------------------------------------------------------------------------ prediction
def split_pairs(num_pairs: int, world_size: int) -> list[tuple[int, int]]:
    """Contiguous, disjoint pair ranges [start, stop), one per rank, covering 0..num_pairs (some may be empty)."""
    return [(r * num_pairs // world_size, (r + 1) * num_pairs // world_size) for r in range(world_size)]


@dataclass(frozen=True, kw_only=True)
class PairTask:
    """Predict the motions of pairs start .. start + len(frame_urls) - 2 of one sequence."""

    sequence: str
    start: int
    frame_urls: tuple[str, ...]
    """Frames start .. stop (one more than the pairs)."""


@dataclass(frozen=True, kw_only=True)
class MotionPart:
    sequence: str
    start: int
    motions_N44: np.ndarray


@dataclass(frozen=True, kw_only=True)
class PosePartResult:
    """What one worker sends back."""

    rank: int
    parts: list[MotionPart]
    identity: dict[str, Any]
    size_wh: tuple[int, int]
    seconds: float


def load_frame(url: str, size_wh: tuple[int, int]) -> np.ndarray:
    """An image as network input: (3, H, W) float32 in [0, 1], resized with PIL bilinear to size_wh."""
    from PIL import Image

    with Image.open(io.BytesIO(storage.read_bytes(url))) as im:
        rgb = im.convert("RGB").resize(size_wh, Image.Resampling.BILINEAR)
    return np.ascontiguousarray(np.asarray(rgb, np.float32).transpose(2, 0, 1) / 255.0)


def predict_motions(nets, frame_urls: tuple[str, ...], *, size_wh: tuple[int, int], batch_size: int,
                    device: Any = "cpu") -> np.ndarray:
    """Motions (len(frame_urls) - 1, 4, 4) float64 of consecutive frames; every frame is read once."""
    import torch

    from model.nets import predict_ego_motion

    out = []
    prev = load_frame(frame_urls[0], size_wh)
    for b0 in range(0, len(frame_urls) - 1, batch_size):
        earlier, later = [], []
        for i in range(b0, min(b0 + batch_size, len(frame_urls) - 1)):
            nxt = load_frame(frame_urls[i + 1], size_wh)
            earlier.append(prev)
            later.append(nxt)
            prev = nxt
        earlier_B3HW = torch.from_numpy(np.stack(earlier)).to(device)
        later_B3HW = torch.from_numpy(np.stack(later)).to(device)
        out.append(predict_ego_motion(nets, earlier_B3HW, later_B3HW).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 4, 4))


def predict_part(*, checkpoint: str, tasks: list[PairTask], rank: int, batch_size: int, device: str = "cpu",
                 num_threads: int = 0) -> PosePartResult:
    """Load the checkpoint once and predict the motions of this worker's pair ranges."""
    import torch

    from engine.checkpoint import load_nets

    if num_threads > 0:
        torch.set_num_threads(num_threads)
    t0 = time.perf_counter()
    nets, cfg, identity = load_nets(checkpoint, device=device)
    nets.eval()
    size_wh = (cfg.loader.width, cfg.loader.height)
    parts = [MotionPart(sequence=t.sequence, start=t.start,
                        motions_N44=predict_motions(nets, t.frame_urls, size_wh=size_wh, batch_size=batch_size,
                                                    device=device))
             for t in tasks]
    return PosePartResult(rank=rank, parts=parts, identity=identity, size_wh=size_wh,
                          seconds=time.perf_counter() - t0)


def merge_motions(parts: list[MotionPart], num_pairs: dict[str, int]) -> dict[str, np.ndarray]:
    """Concatenate each sequence's parts in order, checking that every pair was predicted exactly once."""
    out = {}
    for seq, n in num_pairs.items():
        mine = sorted((p for p in parts if p.sequence == seq and len(p.motions_N44)), key=lambda p: p.start)
        expected = 0
        for p in mine:
            if p.start < expected:
                raise ValueError(f"sequence {seq}: frame pairs {p.start}..{expected - 1} predicted more than once")
            if p.start > expected:
                raise ValueError(f"sequence {seq}: frame pairs {expected}..{p.start - 1} not predicted")
            expected = p.start + len(p.motions_N44)
        if expected != n:
            raise ValueError(f"sequence {seq}: {expected} frame pairs predicted but the sequence has {n}")
        out[seq] = np.concatenate([p.motions_N44 for p in mine]) if mine else np.zeros((0, 4, 4))
    unknown = sorted({p.sequence for p in parts} - set(num_pairs))
    if unknown:
        raise ValueError(f"motions predicted for unknown sequences {unknown}")
    return out


# ------------------------------------------------------------------------------------------------ scoring
def trajectory_from_motions(motions_N44: np.ndarray) -> np.ndarray:
    """Camera-to-world poses (N + 1, 4, 4) of the frames, frame 0 = identity: G_{i+1} = G_i @ inv(T_i)."""
    poses = [np.eye(4)]
    for T in np.asarray(motions_N44, dtype=np.float64):
        poses.append(poses[-1] @ np.linalg.inv(T))
    return np.stack(poses)


def scale_to(pred_xyz_F3: np.ndarray, gt_xyz_F3: np.ndarray) -> float:
    """Least-squares scale of predicted positions onto true ones (both start at the origin); 0 if none moved."""
    denom = float(np.sum(pred_xyz_F3**2))
    return float(np.sum(gt_xyz_F3 * pred_xyz_F3)) / denom if denom > 0 else 0.0


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def _nanmedian(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else float("nan")


@dataclass(frozen=True, kw_only=True)
class MotionScore:
    """Scores of one set of predicted motions against the truth (arrays kept for cross-sequence summaries)."""

    ates_S: np.ndarray
    rotation_error_N: np.ndarray
    cosine_N: np.ndarray
    length_ratio_N: np.ndarray
    rpe: dict[str, float]
    trajectory_scale: float
    trajectory_ate_rmse: float
    pred_xyz_F3: np.ndarray
    """Predicted positions chained from the motions, times trajectory_scale."""

    def metrics(self) -> dict[str, float]:
        return {
            "ate_mean": float(np.mean(self.ates_S)),
            "ate_std": float(np.std(self.ates_S)),
            "num_snippets": len(self.ates_S),
            "rotation_error_deg": _nanmean(self.rotation_error_N),
            "translation_cosine": _nanmean(self.cosine_N),
            "length_ratio_median": _nanmedian(self.length_ratio_N),
            "trajectory_scale": self.trajectory_scale,
            "trajectory_ate_rmse": self.trajectory_ate_rmse,
            **self.rpe,
        }


def score_motions(pred_N44: np.ndarray, gt_N44: np.ndarray, *, protocol: PoseProtocol) -> MotionScore:
    """All scores of predicted motions against true ones (model.pose_metrics checks shapes and NaNs)."""
    ates = snippet_ates(pred_N44, gt_N44, track_length=protocol.track_length)
    rel = relative_pose_errors(pred_N44, gt_N44)
    gt_poses = trajectory_from_motions(gt_N44)
    pred_poses = trajectory_from_motions(pred_N44)
    scale = scale_to(pred_poses[:, :3, 3], gt_poses[:, :3, 3])
    pred_poses[:, :3, 3] *= scale
    err = pred_poses[:, :3, 3] - gt_poses[:, :3, 3]
    rpe = kitti_odometry_errors(pred_poses, gt_poses, lengths=protocol.rpe_lengths, step=protocol.rpe_step)
    return MotionScore(
        ates_S=ates, rotation_error_N=rel["rotation_error_deg"], cosine_N=rel["cosine"],
        length_ratio_N=rel["length_ratio"], rpe=rpe, trajectory_scale=scale,
        trajectory_ate_rmse=float(np.sqrt(np.mean(np.sum(err**2, axis=1)))), pred_xyz_F3=pred_poses[:, :3, 3],
    )


@dataclass(frozen=True, kw_only=True)
class SequenceScore:
    name: str
    num_frames: int
    model: MotionScore
    baseline: MotionScore
    """A standing camera: every motion the identity."""
    gt_xyz_F3: np.ndarray
    """True positions relative to frame 0 (camera x right, y down, z forward)."""
    snippet_rows: list[dict[str, Any]]


def check_motions(motions: np.ndarray, *, num_frames: int, source: str, gt_source: str) -> np.ndarray:
    """Predicted motions as (F - 1, 4, 4) float64, or one clear error (shape, count, NaN, not rigid)."""
    m = np.asarray(motions)
    if m.ndim == 3 and m.shape[1:] == (3, 4):
        m = np.concatenate([m, np.broadcast_to([[[0.0, 0.0, 0.0, 1.0]]], (len(m), 1, 4))], axis=1)
    if m.ndim != 3 or m.shape[1:] != (4, 4):
        raise ValueError(f"{source}: shape {m.shape}, expected (N, 4, 4) motions (monodepth2's poses.npy)")
    if not np.issubdtype(m.dtype, np.floating):
        raise ValueError(f"{source}: dtype {m.dtype}, expected float motions")
    m = m.astype(np.float64)
    if len(m) != num_frames - 1:
        raise ValueError(f"{source} holds {len(m)} motions but {gt_source} has {num_frames} poses "
                         f"(expected {num_frames - 1} = frames - 1)")
    bad = np.flatnonzero(~np.all(np.isfinite(m), axis=(1, 2)))
    if len(bad):
        raise ValueError(f"{source}: {len(bad)} motions contain NaN or infinite values (first: entry {bad[0]})")
    bad = np.flatnonzero(np.abs(m[:, 3] - [0.0, 0.0, 0.0, 1.0]).max(axis=1) > 1e-6)
    if len(bad):
        raise ValueError(f"{source}: entry {bad[0]} is not a rigid 4x4 transform (last row {m[bad[0], 3].tolist()}, "
                         "expected [0, 0, 0, 1]; transposed?)")
    return m


def score_sequence(name: str, pred_N44: np.ndarray, gt_poses_F44: np.ndarray, *,
                   protocol: PoseProtocol) -> SequenceScore:
    """Score a sequence's predicted motions against its camera-to-world poses (any world frame)."""
    if len(gt_poses_F44) < 2:
        raise ValueError(f"sequence {name}: {len(gt_poses_F44)} frame(s); pose evaluation needs at least 2")
    gt_poses = np.linalg.inv(gt_poses_F44[0])[None] @ gt_poses_F44
    gt_N44 = motions_from_poses(gt_poses)
    model = score_motions(pred_N44, gt_N44, protocol=protocol)
    baseline = score_motions(np.broadcast_to(np.eye(4), gt_N44.shape), gt_N44, protocol=protocol)
    gt_xyz = gt_poses[:, :3, 3]
    n = len(gt_N44)
    rows = []
    for i in range(n):
        k = min(protocol.track_length - 1, n - i)
        rows.append({"sequence": name, "start_frame": i, "num_motions": k, "ate": float(model.ates_S[i]),
                     "zero_motion_ate": float(baseline.ates_S[i]),
                     "gt_path_m": float(np.sum(np.linalg.norm(np.diff(gt_xyz[i : i + k + 1], axis=0), axis=1)))})
    return SequenceScore(name=name, num_frames=len(gt_poses), model=model, baseline=baseline, gt_xyz_F3=gt_xyz,
                         snippet_rows=rows)


def combine(scores: list[MotionScore]) -> dict[str, float]:
    """Metrics over several sequences: ATE over all their snippets, per-motion errors over all motions, devkit
    errors averaged over all segments (as the devkit's totals); trajectory numbers are per sequence only."""
    ates = np.concatenate([s.ates_S for s in scores])
    segs = np.array([s.rpe["rpe_segments"] for s in scores])

    def seg_mean(key: str) -> float:
        vals = np.array([s.rpe[key] for s in scores])
        ok = segs > 0
        return float(np.sum(vals[ok] * segs[ok]) / segs[ok].sum()) if ok.any() else float("nan")

    return {
        "ate_mean": float(np.mean(ates)),
        "ate_std": float(np.std(ates)),
        "num_snippets": len(ates),
        "rotation_error_deg": _nanmean(np.concatenate([s.rotation_error_N for s in scores])),
        "translation_cosine": _nanmean(np.concatenate([s.cosine_N for s in scores])),
        "length_ratio_median": _nanmedian(np.concatenate([s.length_ratio_N for s in scores])),
        "rpe_trans_pct": seg_mean("rpe_trans_pct"),
        "rpe_rot_deg_per_100m": seg_mean("rpe_rot_deg_per_100m"),
        "rpe_segments": float(segs.sum()),
    }
