"""Depth metrics: the ONE implementation used by in-training validation and by the evaluation jobs.

Shape legend: N valid pixels of one image, H height, W width, M = len(METRIC_NAMES) = 7.

The formulas are monodepth2's `compute_errors(gt, pred)` (evaluate_depth.py), over the masked pixels of ONE image:
    thresh = max(gt / pred, pred / gt);  a_k = mean(thresh < 1.25 ** k)
    rmse = sqrt(mean((gt - pred) ** 2));  rmse_log = sqrt(mean((ln gt - ln pred) ** 2))
    abs_rel = mean(|gt - pred| / gt);     sq_rel = mean((gt - pred) ** 2 / gt)
Dataset metrics are the mean of the per-image metrics (monodepth2 `np.array(errors).mean(0)`), which is why the
accumulator keeps per-image sums + an image count: sums from any number of workers add up exactly.

Everything runs in float64 on the input's device (pure torch, no I/O, nothing distributed); NumPy inputs are
accepted and converted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

METRIC_NAMES: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
"""Output order of `compute_errors` (monodepth2's names and order)."""

LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "rmse_log": True, "a1": False, "a2": False, "a3": False}


def _as_f64(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    return x.to(torch.float64)


def median(x_N: torch.Tensor) -> torch.Tensor:
    """The median as NumPy defines it (mean of the two middle values for an even count); torch.median does not."""
    n = x_N.numel()
    if n == 0:
        raise ValueError("median of an empty set of pixels")
    s = torch.sort(x_N.reshape(-1)).values
    if n % 2:
        return s[n // 2]
    return 0.5 * (s[n // 2 - 1] + s[n // 2])


def compute_errors(gt_N: torch.Tensor | np.ndarray, pred_N: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The 7 metrics of one image over its valid pixels (1-D tensors of positive depths, metres) -> float64 (M,)."""
    gt = _as_f64(gt_N).reshape(-1)
    pred = _as_f64(pred_N).reshape(-1).to(gt.device)
    if gt.numel() == 0:
        raise ValueError("compute_errors: no valid pixels")
    if gt.shape != pred.shape:
        raise ValueError(f"compute_errors: gt has {gt.numel()} pixels but pred has {pred.numel()}")
    thresh = torch.maximum(gt / pred, pred / gt)
    a1 = (thresh < 1.25).double().mean()
    a2 = (thresh < 1.25**2).double().mean()
    a3 = (thresh < 1.25**3).double().mean()
    diff = gt - pred
    rmse = torch.sqrt((diff**2).mean())
    rmse_log = torch.sqrt(((torch.log(gt) - torch.log(pred)) ** 2).mean())
    abs_rel = (diff.abs() / gt).mean()
    sq_rel = (diff**2 / gt).mean()
    return torch.stack([abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3])


@dataclass(frozen=True, kw_only=True)
class ImageResult:
    """Metrics of one image: `errors_M` in METRIC_NAMES order, the median-scaling ratio applied (1.0 when off,
    else median(gt)/median(pred)) and the number of valid pixels."""

    errors_M: torch.Tensor
    ratio: float
    num_pixels: int

    def as_dict(self) -> dict[str, float]:
        d = {name: float(v) for name, v in zip(METRIC_NAMES, self.errors_M.tolist())}
        d["ratio"] = self.ratio
        d["num_pixels"] = self.num_pixels
        return d


def evaluate_depth_map(
    gt_HW: torch.Tensor | np.ndarray,
    pred_HW: torch.Tensor | np.ndarray,
    mask_HW: torch.Tensor | np.ndarray,
    *,
    use_median_scaling: bool,
    scale_factor: float = 1.0,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
) -> ImageResult:
    """Score one predicted depth map (already at the GT's size) against its GT over `mask_HW`.

    monodepth2 order: select masked pixels; multiply pred by `scale_factor`; with median scaling multiply by
    median(gt)/median(pred); clamp pred to [min_depth, max_depth]; compute the errors.
    """
    gt = _as_f64(gt_HW)
    pred = _as_f64(pred_HW).to(gt.device)
    mask = torch.as_tensor(np.asarray(mask_HW)) if isinstance(mask_HW, np.ndarray) else mask_HW
    mask = mask.to(device=gt.device, dtype=torch.bool)
    if gt.shape != pred.shape or gt.shape != mask.shape:
        raise ValueError(f"gt {tuple(gt.shape)}, pred {tuple(pred.shape)} and mask {tuple(mask.shape)} differ in size")
    gt_N = gt[mask]
    pred_N = pred[mask] * scale_factor
    if gt_N.numel() == 0:
        raise ValueError("no valid ground-truth pixels in the evaluation mask")
    ratio = 1.0
    if use_median_scaling:
        ratio_t = median(gt_N) / median(pred_N)
        ratio = float(ratio_t)
        pred_N = pred_N * ratio_t
    pred_N = pred_N.clamp(min_depth, max_depth)
    return ImageResult(errors_M=compute_errors(gt_N, pred_N), ratio=ratio, num_pixels=int(gt_N.numel()))


@dataclass(kw_only=True)
class MetricAccumulator:
    """Per-image metric sums + image count; mergeable across batches, workers and processes.

    For torch.distributed: `t = acc.to_tensor(); dist.all_reduce(t); MetricAccumulator.from_tensor(t).means()`.
    """

    sums_M: torch.Tensor = field(default_factory=lambda: torch.zeros(len(METRIC_NAMES), dtype=torch.float64))
    count: int = 0

    def add(self, errors_M: torch.Tensor) -> None:
        self.sums_M = self.sums_M + errors_M.detach().to("cpu", torch.float64)
        self.count += 1

    def merge(self, other: MetricAccumulator) -> MetricAccumulator:
        return MetricAccumulator(sums_M=self.sums_M + other.sums_M, count=self.count + other.count)

    def to_tensor(self) -> torch.Tensor:
        """float64 (M+1,): the sums followed by the count (sum-reducible)."""
        return torch.cat([self.sums_M, torch.tensor([float(self.count)], dtype=torch.float64)])

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> MetricAccumulator:
        t = t.detach().to("cpu", torch.float64)
        if t.shape != (len(METRIC_NAMES) + 1,):
            raise ValueError(f"expected a tensor of {len(METRIC_NAMES) + 1} values, got shape {tuple(t.shape)}")
        return cls(sums_M=t[:-1].clone(), count=int(round(float(t[-1]))))

    def means(self) -> dict[str, float]:
        """Mean over images of each metric (monodepth2's dataset number)."""
        if self.count == 0:
            raise ValueError("no images were evaluated")
        return {name: float(v) for name, v in zip(METRIC_NAMES, (self.sums_M / self.count).tolist())}
