"""Colour mapping of depth / disparity maps for reports, trainer image logs and `rmdepth predict`.

Shape legend: H height, W width.

`colorize` maps a map to a magma image the way monodepth2's test_simple.py does (disparity, vmin = min,
vmax = 95th percentile): near is bright, far is dark. Depth maps are inverted to disparity first. Invalid pixels
(<= 0 or non-finite, e.g. the holes of sparse lidar GT) are black.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import torch


@lru_cache(maxsize=1)
def _magma_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0 + 0.5).astype(np.uint8)


def colorize(
    depth_or_disp_HW: np.ndarray | torch.Tensor,
    *,
    kind: Literal["disparity", "depth"] = "disparity",
    vmax_percentile: float = 95.0,
    disp_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Magma colour image (H, W, 3) uint8 of a disparity (default) or depth map; invalid pixels are black.
    The colour range is the map's own (min, 95th percentile of disparity) unless `disp_range` fixes it (to show
    two maps on one scale)."""
    x = depth_or_disp_HW.detach().cpu().numpy() if isinstance(depth_or_disp_HW, torch.Tensor) else depth_or_disp_HW
    x = np.asarray(x, dtype=np.float64)
    x = np.squeeze(x)
    if x.ndim != 2:
        raise ValueError(f"colorize expects an H x W map, got shape {x.shape}")
    if kind not in ("disparity", "depth"):
        raise ValueError(f"kind must be disparity or depth, got {kind!r}")
    valid = np.isfinite(x) & (x > 0)
    disp = np.zeros_like(x)
    disp[valid] = 1.0 / x[valid] if kind == "depth" else x[valid]
    out = np.zeros((*x.shape, 3), np.uint8)
    if not valid.any():
        return out
    vals = disp[valid]
    vmin, vmax = disp_range or (float(vals.min()), float(np.percentile(vals, vmax_percentile)))
    if vmax <= vmin:
        vmax = vmin + 1e-12
    idx = np.clip((disp - vmin) / (vmax - vmin), 0.0, 1.0) * 255.0
    out[valid] = _magma_lut()[idx[valid].astype(np.int64)]
    return out


def dilate_sparse(x_HW: np.ndarray, radius: int = 2) -> np.ndarray:
    """Grow the valid pixels of a sparse map (max filter) so projected lidar points are visible in a thumbnail."""
    t = torch.as_tensor(np.nan_to_num(np.asarray(x_HW, np.float32), nan=0.0))[None, None]
    grown = torch.nn.functional.max_pool2d(t, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return grown[0, 0].numpy()


def to_uint8_image(image_3HW: np.ndarray | torch.Tensor) -> np.ndarray:
    """A float [0, 1] CHW image -> uint8 HWC."""
    x = image_3HW.detach().cpu().numpy() if isinstance(image_3HW, torch.Tensor) else np.asarray(image_3HW)
    return (np.clip(np.transpose(x, (1, 2, 0)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize_rgb(image_HW3: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 image to (h, w) (bilinear; nearest for colour maps would also be fine)."""
    from PIL import Image

    if image_HW3.shape[:2] == tuple(size_hw):
        return image_HW3
    return np.asarray(Image.fromarray(image_HW3).resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR))


def image_grid(rows: list[list[np.ndarray]], *, cell_hw: tuple[int, int], pad: int = 4) -> np.ndarray:
    """Tile uint8 HxWx3 images (each resized to `cell_hw`) into one image; one inner list per grid row."""
    if not rows:
        raise ValueError("image_grid: no rows")
    ncols = max(len(r) for r in rows)
    h, w = cell_hw
    grid = np.full((len(rows) * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = resize_rgb(img, (h, w))
    return grid
