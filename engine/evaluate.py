"""Evaluation protocols (KITTI Eigen, KITTI Eigen benchmark, Cityscapes) on top of `model.metrics`.

Shape legend: B batch, H x W network resolution, Hg x Wg ground-truth resolution.

Per image, as monodepth2 `evaluate_depth.py` (and ManyDepth for Cityscapes) do it:
  1. the network's scaled disparity (1/depth) at network resolution, optionally flip post-processed
     (`batch_post_process_disparity`);
  2. (Cityscapes) the GT keeps its top `gt_top_fraction` rows (the ego car is cut);
  3. the disparity is resized bilinearly (cv2.resize == F.interpolate(align_corners=False)) to the GT size,
     depth = 1 / disparity (external depth predictions are resized as depth);
  4. mask: `min_depth < gt < max_depth` (or `gt > 0` for the benchmark GT), intersected with the crop
     (Garg crop, Cityscapes [256:, 192:1856] scaled to the GT size, or none);
  5. `model.metrics.evaluate_depth_map`: scale factor, median scaling, clamp, the 7 errors.
No Ray, no I/O: the jobs in `jobs/` distribute this.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from engine.run_config import MAX_BAD_FRAMES, PROTOCOL_NAMES
from model.metrics import METRIC_NAMES, ImageResult, MetricAccumulator, evaluate_depth_map
from pipeline.batch import EvalBatch

Crop = Literal["garg", "cityscapes", "none"]
GtMask = Literal["range", "positive"]
PredType = Literal["disparity", "depth"]

GARG_CROP = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
"""Rows [int(f0*H), int(f1*H)), cols [int(f2*W), int(f3*W)) of the Garg/Eigen crop (monodepth2)."""
CITYSCAPES_CROP = (256 / 768, 1.0, 192 / 2048, 1856 / 2048)
"""ManyDepth's [256:, 192:1856] on the 768x2048 top-75% GT, as fractions so it scales to other resolutions."""


@dataclass(frozen=True, kw_only=True)
class EvalProtocol:
    name: str
    """Protocol name recorded in results (kitti-eigen, kitti-eigen-benchmark, cityscapes, or a custom one)."""
    crop: Crop = "garg"
    """Evaluation crop: Garg (KITTI Eigen), Cityscapes middle 50%, or none."""
    gt_mask: GtMask = "range"
    """`range`: min_depth < gt < max_depth (monodepth2 eigen, ManyDepth); `positive`: gt > 0 (eigen_benchmark)."""
    min_depth: float = 1e-3
    """Lower GT cap of the range mask and lower clamp of the prediction (metres)."""
    max_depth: float = 80.0
    """Upper GT cap of the range mask and upper clamp of the prediction (metres)."""
    use_median_scaling: bool = True
    """Per-image median scaling (monocular models); off for metric/stereo models, which use `scale_factor`."""
    scale_factor: float = 1.0
    """Fixed multiplier of the predicted depth (monodepth2 pred_depth_scale_factor; 5.4 for its stereo models)."""
    use_post_process: bool = False
    """Flip post-processing (monodepth2 batch_post_process_disparity); needs the network, not external preds."""
    gt_top_fraction: float = 1.0
    """Fraction of GT rows kept from the top before anything else (Cityscapes: 0.75 drops the ego car). Apply
    only to GT stored at full camera height (ManyDepth's 1024x2048 gt_depths); 1.0 keeps the GT as it is."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("protocol name must not be empty")
        if self.crop not in ("garg", "cityscapes", "none"):
            raise ValueError(f"protocol {self.name}: crop must be garg, cityscapes or none, got {self.crop!r}")
        if self.gt_mask not in ("range", "positive"):
            raise ValueError(f"protocol {self.name}: gt_mask must be range or positive, got {self.gt_mask!r}")
        if not 0 <= self.min_depth < self.max_depth:
            raise ValueError(f"protocol {self.name}: need 0 <= min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if self.min_depth == 0:
            raise ValueError(f"protocol {self.name}: min_depth must be > 0 (it clamps predictions before a log)")
        if self.scale_factor <= 0:
            raise ValueError(f"protocol {self.name}: scale_factor must be positive, got {self.scale_factor}")
        if not 0 < self.gt_top_fraction <= 1:
            raise ValueError(f"protocol {self.name}: gt_top_fraction must be in (0, 1], got {self.gt_top_fraction}")

    def settings(self) -> dict[str, Any]:
        """All settings, for reports and result rows."""
        d = dataclasses.asdict(self)
        d.update(DESCRIPTIVE_SETTINGS)
        return d


DESCRIPTIVE_SETTINGS = {
    "resize": "bilinear disparity (align_corners=False), depth = 1/disp",
    "averaging": "per image, then mean over images",
}
"""What `EvalProtocol.settings` records beside the fields: fixed descriptions, not settings one can change."""


PROTOCOLS: dict[str, EvalProtocol] = {
    "kitti-eigen": EvalProtocol(name="kitti-eigen", crop="garg", gt_mask="range"),
    "kitti-eigen-benchmark": EvalProtocol(name="kitti-eigen-benchmark", crop="none", gt_mask="positive"),
    # Cityscapes eval shards store the GT already cut to the frames' top 75% (ego-car crop at sharding, see
    # pipeline/sources/cityscapes.py); ManyDepth's full-height gt_depths need gt_top_fraction=0.75
    # (`rmdepth eval --predictions` uses that for this protocol unless told otherwise).
    "cityscapes": EvalProtocol(name="cityscapes", crop="cityscapes", gt_mask="range"),
}
assert tuple(PROTOCOLS) == PROTOCOL_NAMES, "engine.run_config.PROTOCOL_NAMES lists the protocols defined here"
MANYDEPTH_GT_TOP_FRACTION = 0.75
"""Rows kept from the top of ManyDepth's full-height (1024x2048) Cityscapes GT."""


def make_protocol(name: str, **overrides: Any) -> EvalProtocol:
    """A named protocol with some settings replaced (None values are ignored)."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(PROTOCOLS[name], **changes)


# ---------------------------------------------------------------------------------------------------------------
# Geometry of the protocol: GT cut, crop, mask


def cut_gt(gt_HW: np.ndarray, protocol: EvalProtocol) -> np.ndarray:
    """The GT rows the protocol evaluates (Cityscapes keeps the top 75%)."""
    if protocol.gt_top_fraction >= 1.0:
        return gt_HW
    keep = int(round(gt_HW.shape[0] * protocol.gt_top_fraction))
    return gt_HW[:keep]


def crop_box(height: int, width: int, crop: Crop) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the evaluation crop for a GT of size height x width."""
    if crop == "garg":
        f = GARG_CROP
        return int(f[0] * height), int(f[1] * height), int(f[2] * width), int(f[3] * width)
    if crop == "cityscapes":
        f = CITYSCAPES_CROP
        return int(round(f[0] * height)), height, int(round(f[2] * width)), int(round(f[3] * width))
    return 0, height, 0, width


def eval_mask(gt_HW: np.ndarray, protocol: EvalProtocol) -> np.ndarray:
    """Boolean mask of the GT pixels that count (GT validity AND crop)."""
    if protocol.gt_mask == "range":
        mask = (gt_HW > protocol.min_depth) & (gt_HW < protocol.max_depth)
    else:
        mask = gt_HW > 0
    r0, r1, c0, c1 = crop_box(gt_HW.shape[0], gt_HW.shape[1], protocol.crop)
    crop = np.zeros_like(mask)
    crop[r0:r1, c0:c1] = True
    return mask & crop


def resize_to(x_hw: torch.Tensor | np.ndarray, size_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of one map (cv2.resize INTER_LINEAR semantics) -> float64 (Hg, Wg)."""
    t = torch.as_tensor(np.asarray(x_hw, dtype=np.float32)) if isinstance(x_hw, np.ndarray) else x_hw
    t = t.detach().to(torch.float32)
    if t.dim() != 2:
        raise ValueError(f"expected a 2-D prediction, got shape {tuple(t.shape)}")
    if tuple(t.shape) == tuple(size_hw):
        return t.to(torch.float64)
    out = F.interpolate(t[None, None], size=tuple(size_hw), mode="bilinear", align_corners=False)[0, 0]
    return out.to(torch.float64)


def evaluate_prediction(
    pred_hw: torch.Tensor | np.ndarray,
    gt_HW: np.ndarray,
    protocol: EvalProtocol,
    *,
    pred_type: PredType = "disparity",
) -> ImageResult:
    """Score one prediction at any resolution (disparity or depth) against its GT under `protocol`."""
    gt = cut_gt(np.asarray(gt_HW, dtype=np.float64), protocol)
    pred = resize_to(pred_hw, gt.shape)
    if pred_type == "disparity":
        pred = 1.0 / pred
    elif pred_type != "depth":
        raise ValueError(f"pred_type must be disparity or depth, got {pred_type!r}")
    return evaluate_depth_map(
        gt,
        pred,
        eval_mask(gt, protocol),
        use_median_scaling=protocol.use_median_scaling,
        scale_factor=protocol.scale_factor,
        min_depth=protocol.min_depth,
        max_depth=protocol.max_depth,
    )


# ---------------------------------------------------------------------------------------------------------------
# Network predictions


def post_process_disparity(l_disp_BHW: torch.Tensor, r_disp_BHW: torch.Tensor) -> torch.Tensor:
    """monodepth2 batch_post_process_disparity: blend the prediction and the un-flipped prediction of the flipped
    image (`r_disp_BHW` is already flipped back), using each one's good side near the image borders."""
    _, h, w = l_disp_BHW.shape
    m_disp = 0.5 * (l_disp_BHW + r_disp_BHW)
    lin = torch.linspace(0, 1, w, dtype=l_disp_BHW.dtype, device=l_disp_BHW.device)
    l_mask_W = 1.0 - torch.clamp(20 * (lin - 0.05), 0, 1)
    l_mask = l_mask_W.expand(h, w)[None]
    r_mask = l_mask.flip(-1)
    return r_mask * l_disp_BHW + l_mask * r_disp_BHW + (1.0 - l_mask - r_mask) * m_disp


@torch.no_grad()
def predict_disparity(depth_net: torch.nn.Module, image_B3HW: torch.Tensor, *, use_post_process: bool) -> torch.Tensor:
    """Scaled disparity (1/depth, the quantity monodepth2 resizes) at network resolution -> (B, H, W)."""
    from model.nets import predict_depth

    if not use_post_process:
        return 1.0 / predict_depth(depth_net, image_B3HW)[:, 0]
    b = image_B3HW.shape[0]
    disp = 1.0 / predict_depth(depth_net, torch.cat([image_B3HW, image_B3HW.flip(-1)]))[:, 0]
    return post_process_disparity(disp[:b], disp[b:].flip(-1))


def evaluate_disparity_batch(
    disp_BHW: torch.Tensor, eval_batch: EvalBatch, protocol: EvalProtocol
) -> list[dict[str, Any]]:
    """Per-image rows (key + METRIC_NAMES + ratio + num_pixels) for the valid samples of a batch."""
    rows = []
    disp = disp_BHW.detach().cpu()
    for i in range(eval_batch.batch_size):
        if not bool(eval_batch.valid_B[i]):
            continue
        try:
            res = evaluate_prediction(disp[i], np.asarray(eval_batch.gt_depths[i]), protocol, pred_type="disparity")
        except ValueError as e:
            raise ValueError(f"frame {eval_batch.keys[i]}: {e}") from e
        rows.append({"key": eval_batch.keys[i], **res.as_dict()})
    return rows


def evaluate_batch(depth_net: torch.nn.Module, eval_batch: EvalBatch, protocol: EvalProtocol) -> list[dict[str, Any]]:
    """Run the depth net on an EvalBatch and score each valid sample under `protocol` -> per-image rows (the
    in-training validation: a damaged frame the loader skipped is left out, with one log line)."""
    for frame in eval_batch.skipped:
        _stderr(f"validation skipped a damaged frame: {frame.shard}: sample {frame.key!r}: {frame.reason}")
    disp = predict_disparity(depth_net, eval_batch.image_B3HW, use_post_process=protocol.use_post_process)
    return evaluate_disparity_batch(disp, eval_batch, protocol)


def constant_baseline_batch(eval_batch: EvalBatch, protocol: EvalProtocol) -> list[dict[str, Any]]:
    """Rows of the constant-depth baseline (median scaling turns it into median(gt)): the floor to beat."""
    b, _, h, w = eval_batch.image_B3HW.shape
    return evaluate_disparity_batch(torch.ones(b, h, w, dtype=torch.float64), eval_batch, protocol)


def accumulate(rows: list[dict[str, Any]]) -> MetricAccumulator:
    acc = MetricAccumulator()
    for r in rows:
        acc.add(torch.tensor([r[name] for name in METRIC_NAMES], dtype=torch.float64))
    return acc


def evaluate_predictions(
    pred_list: list[np.ndarray] | np.ndarray,
    gt_list: list[np.ndarray],
    protocol: EvalProtocol,
    pred_type: PredType = "disparity",
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Evaluate predictions made elsewhere (monodepth2 --ext_disp_to_eval): each one is resized to its GT map.

    Returns (mean metrics over images, per-image rows keyed by index).
    """
    if len(pred_list) != len(gt_list):
        raise ValueError(f"{len(pred_list)} predictions but {len(gt_list)} ground-truth maps")
    if protocol.use_post_process:
        raise ValueError("flip post-processing needs the network; it cannot be applied to external predictions")
    rows = []
    for i, (pred, gt) in enumerate(zip(pred_list, gt_list)):
        pred = np.asarray(pred)
        if pred.ndim == 3 and pred.shape[0] == 1:
            pred = pred[0]
        if pred_type == "disparity" and not np.all(np.isfinite(pred)):
            raise ValueError(f"prediction {i} has non-finite values")
        try:
            res = evaluate_prediction(pred, gt, protocol, pred_type=pred_type)
        except ValueError as e:
            raise ValueError(f"prediction/GT {i}: {e}") from e
        rows.append({"key": f"{i:06d}", "index": i, **res.as_dict()})
    return accumulate(rows).means(), rows


# ---------------------------------------------------------------------------------------------------------------
# One worker's part of a checkpoint evaluation (the eval job runs one per Ray worker; no Ray here)


@dataclass(kw_only=True)
class PartResult:
    """What one worker sends back: per-image rows (model and, if asked, the constant baseline), the frames it
    skipped as damaged, a few samples for the report grid, and timing."""

    rank: int
    rows: list[dict[str, Any]]
    baseline_rows: list[dict[str, Any]]
    samples: list[Any]
    identity: dict[str, Any]
    num_batches: int
    seconds: float
    skipped: list[dict[str, str]] = field(default_factory=list)
    """{"shard", "key", "reason"} of each damaged frame of this part (pipeline.batch.SkippedFrame)."""


class TooManyBadFramesError(ValueError):
    """More damaged frames than the evaluation's budget (max_bad_frames)."""


def count_skipped(skipped: list[dict[str, str]], found, *, max_bad_frames: int,
                  log: Callable[[str], None]) -> None:
    """Add the SkippedFrames `found` to `skipped`, one log line each; past `max_bad_frames` stop, naming the shard."""
    for frame in found:
        skipped.append(frame.as_dict())
        log(f"skipped a damaged evaluation frame ({len(skipped)} so far): {frame.shard}: sample {frame.key!r}: "
            f"{frame.reason}")
        if len(skipped) > max_bad_frames:
            raise TooManyBadFramesError(
                f"more than max_bad_frames={max_bad_frames} damaged evaluation frames; the last: {frame.shard}: "
                f"sample {frame.key!r}: {frame.reason}")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def evaluate_batches(
    depth_net: torch.nn.Module,
    batches,
    protocol: EvalProtocol,
    *,
    baseline: bool = False,
    grid_samples: int = 0,
    device: str | torch.device = "cpu",
    max_bad_frames: int = MAX_BAD_FRAMES,
    skipped: list[dict[str, str]] | None = None,
    log: Callable[[str], None] = _stderr,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any], int]:
    """Score every valid sample of an iterable of EvalBatch -> (rows, baseline rows, grid samples, batches). The
    damaged frames the loader skipped (EvalBatch.skipped) are logged, one line each, and appended to `skipped` (if
    given), up to `max_bad_frames` (TooManyBadFramesError after that)."""
    from engine.report import GridSample
    from engine.viz import to_uint8_image

    rows: list[dict[str, Any]] = []
    base_rows: list[dict[str, Any]] = []
    samples: list[GridSample] = []
    skipped = [] if skipped is None else skipped
    n = 0
    for batch in batches:
        n += 1
        count_skipped(skipped, batch.skipped, max_bad_frames=max_bad_frames, log=log)
        batch = batch.to(device)
        disp = predict_disparity(depth_net, batch.image_B3HW, use_post_process=protocol.use_post_process)
        rows += evaluate_disparity_batch(disp, batch, protocol)
        if baseline:
            base_rows += constant_baseline_batch(batch, protocol)
        for i in range(batch.batch_size):
            if len(samples) >= grid_samples:
                break
            if bool(batch.valid_B[i]):
                samples.append(
                    GridSample(
                        key=batch.keys[i],
                        image_HW3=to_uint8_image(batch.image_B3HW[i]),
                        pred_depth_hw=(1.0 / disp[i]).float().cpu().numpy(),
                        gt_depth_HW=cut_gt(np.asarray(batch.gt_depths[i], np.float32), protocol),
                    )
                )
    return rows, base_rows, samples, n


def evaluate_part(
    *,
    checkpoint: str,
    data: str,
    protocol: EvalProtocol,
    rank: int,
    world_size: int,
    batch_size: int,
    device: str = "cpu",
    baseline: bool = False,
    grid_samples: int = 0,
    num_threads: int = 0,
    max_bad_frames: int = MAX_BAD_FRAMES,
) -> PartResult:
    """Load the checkpoint, build the eval loader for part `rank` of `world_size` of the shard set `data`, and
    score it. Every frame of the set lands in exactly one part, scored or (damaged) skipped; padding samples
    (valid_B False) are left out."""
    import time

    from engine.checkpoint import load_inference_model
    from pipeline.loader.build import build_eval_loader

    if num_threads > 0:
        torch.set_num_threads(num_threads)
    t0 = time.perf_counter()
    depth_net, cfg, identity = load_inference_model(checkpoint, device=device)
    loader_cfg = dataclasses.replace(cfg.loader, batch_size=batch_size, device="gpu" if str(device).startswith("cuda") else "cpu")
    batches = build_eval_loader(data, loader_cfg, rank=rank, world_size=world_size)
    skipped: list[dict[str, str]] = []
    rows, base_rows, samples, n = evaluate_batches(
        depth_net, batches, protocol, baseline=baseline, grid_samples=grid_samples if rank == 0 else 0, device=device,
        max_bad_frames=max_bad_frames, skipped=skipped,
    )
    return PartResult(
        rank=rank,
        rows=rows,
        baseline_rows=base_rows,
        samples=samples,
        identity=identity,
        num_batches=n,
        seconds=time.perf_counter() - t0,
        skipped=skipped,
    )
