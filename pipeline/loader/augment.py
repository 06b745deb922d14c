"""Augmentation parameters and their effect on intrinsics: the one implementation both loaders share.

Shape legend: N samples, H height, W width, C=3 RGB.

Parameters are drawn in Python, once per triplet, from a generator seeded by (seed, epoch, sample id) where the
sample id is the sample's position in its shard set. The same draw therefore comes out of the DALI and the reference
loader, on any number of ranks, and again after a resume. The DALI graph receives them through external_source.

Geometry (per sample, identical for the three frames): a region of interest (ROI) of the stored frame, given in
relative corner coordinates (0 = left/top edge of the first pixel, 1 = right/bottom edge of the last one), is
resampled to the training size (W, H); then an optional horizontal flip. Without scale-crop the ROI is the whole
frame (a plain resize). With scale-crop of zoom s the ROI is 1/s of the frame in each direction at a uniformly
random position. Intrinsics follow the project's pixel convention (pixel centres at integers, `pipeline.intrinsics`).
A flipped frame shows the mirrored scene: a point (X, Y, Z) of the original scene appears where the adjusted K
projects (-X, Y, Z) (monodepth2 and DFV flip the same way: fx unchanged, cx' = W - 1 - cx).

Colour (network input only): DALI's `color_twist` model, reproduced in NumPy for the reference loader:
out = brightness * (contrast * (YIQ->RGB . hue_rotation . saturation . RGB->YIQ) . in + (1 - contrast) * 128),
rounded and clamped to uint8. Unlike torchvision's ColorJitter the four factors are applied in a fixed order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.intrinsics import crop_K, flip_K, resize_K
from pipeline.loader.config import AugmentConfig

_NUM_DRAWS = 10


@dataclass(frozen=True, kw_only=True)
class AugmentParams:
    """Per-sample augmentation parameters.

    flip_N: bool, horizontal flip after the resize.
    roi_N4: float64 (x0, y0, x1, y1) of the source region, relative corner coordinates in [0, 1].
    color_N4: float64 (brightness, contrast, saturation, hue in degrees); identity = (1, 1, 1, 0).
    """

    flip_N: np.ndarray
    roi_N4: np.ndarray
    color_N4: np.ndarray

    def __len__(self) -> int:
        return int(self.flip_N.shape[0])

    def take(self, idx: Sequence[int] | np.ndarray | slice) -> AugmentParams:
        return AugmentParams(flip_N=self.flip_N[idx], roi_N4=self.roi_N4[idx], color_N4=self.color_N4[idx])


def identity_params(n: int) -> AugmentParams:
    """No augmentation: whole-frame ROI, no flip, neutral colour."""
    roi = np.tile(np.array([0.0, 0.0, 1.0, 1.0]), (n, 1))
    color = np.tile(np.array([1.0, 1.0, 1.0, 0.0]), (n, 1))
    return AugmentParams(flip_N=np.zeros(n, dtype=bool), roi_N4=roi, color_N4=color)


def sample_params(cfg: AugmentConfig, *, seed: int, epoch: int, sample_ids: Sequence[int] | np.ndarray) -> AugmentParams:
    """Draw the parameters of each sample in `sample_ids` (deterministic per (seed, epoch, sample id))."""
    n = len(sample_ids)
    if not cfg.enabled or n == 0:
        return identity_params(n)
    u = np.stack(
        [np.random.default_rng([seed & 0xFFFFFFFF, epoch, int(s)]).random(_NUM_DRAWS) for s in sample_ids]
    )
    flip = u[:, 0] < cfg.flip_prob
    zoom = np.where(u[:, 1] < cfg.scale_crop_prob, 1.0 + u[:, 2] * (cfg.max_scale - 1.0), 1.0)
    ext = 1.0 / zoom
    x0 = u[:, 3] * (1.0 - ext)
    y0 = u[:, 4] * (1.0 - ext)
    roi = np.stack([x0, y0, x0 + ext, y0 + ext], axis=1)
    on = u[:, 5] < cfg.color_prob
    b = np.where(on, 1.0 + (2.0 * u[:, 6] - 1.0) * cfg.brightness, 1.0)
    c = np.where(on, 1.0 + (2.0 * u[:, 7] - 1.0) * cfg.contrast, 1.0)
    s = np.where(on, 1.0 + (2.0 * u[:, 8] - 1.0) * cfg.saturation, 1.0)
    h = np.where(on, (2.0 * u[:, 9] - 1.0) * cfg.hue * 360.0, 0.0)
    color = np.stack([b, c, s, h], axis=1)
    # float32-representable values: the DALI graph receives float32, so both loaders see exactly the same numbers
    return AugmentParams(flip_N=flip, roi_N4=_f32(roi), color_N4=_f32(color))


def _f32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32).astype(np.float64)


def adjust_K(
    K_33: np.ndarray, *, src_wh: tuple[int, int], roi_4: np.ndarray, flip: bool, dst_wh: tuple[int, int]
) -> np.ndarray:
    """Intrinsics of the output frame: ROI crop (float offsets) -> resize to dst_wh -> optional flip."""
    sw, sh = src_wh
    x0, y0, x1, y1 = (float(v) for v in roi_4)
    K = crop_K(K_33, x0 * sw, y0 * sh)
    K = resize_K(K, ((x1 - x0) * sw, (y1 - y0) * sh), dst_wh)
    if flip:
        K = flip_K(K, dst_wh[0])
    return K


def adjust_K_N33(
    K_N33: np.ndarray, *, src_wh_N2: np.ndarray, params: AugmentParams, dst_wh: tuple[int, int]
) -> np.ndarray:
    """`adjust_K` for a batch; returns float32 (N, 3, 3)."""
    out = [
        adjust_K(
            K_N33[i],
            src_wh=(int(src_wh_N2[i][0]), int(src_wh_N2[i][1])),
            roi_4=params.roi_N4[i],
            flip=bool(params.flip_N[i]),
            dst_wh=dst_wh,
        )
        for i in range(len(params))
    ]
    return np.stack(out).astype(np.float32) if out else np.zeros((0, 3, 3), np.float32)


_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]])
_YIQ2RGB = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.107, 1.705]])


def color_twist_matrix(brightness: float, contrast: float, saturation: float, hue_deg: float):
    """(M_33, offset) with out = M . rgb + offset for uint8 RGB (DALI color_twist semantics)."""
    rad = np.deg2rad(hue_deg)
    hue = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(rad), np.sin(rad)], [0.0, -np.sin(rad), np.cos(rad)]])
    sat = np.diag([1.0, saturation, saturation])
    M = brightness * contrast * (_YIQ2RGB @ hue @ sat @ _RGB2YIQ)
    offset = (128.0 - 128.0 * contrast) * brightness
    return M, offset


def color_twist_HWC(img_HWC: np.ndarray, color_4: np.ndarray) -> np.ndarray:
    """Apply (brightness, contrast, saturation, hue_deg) to a uint8 RGB image; returns uint8."""
    b, c, s, h = (float(v) for v in color_4)
    if b == 1.0 and c == 1.0 and s == 1.0 and h == 0.0:
        return img_HWC
    M, offset = color_twist_matrix(b, c, s, h)
    out = img_HWC.astype(np.float32) @ M.T.astype(np.float32) + np.float32(offset)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def resize_roi_flip(
    img: Image.Image, *, roi_4: np.ndarray, flip: bool, dst_wh: tuple[int, int]
) -> np.ndarray:
    """Reference geometry: resample the ROI (relative corners) of a PIL RGB image to dst_wh, then flip; uint8 HWC."""
    sw, sh = img.size
    x0, y0, x1, y1 = (float(v) for v in roi_4)
    box = (x0 * sw, y0 * sh, x1 * sw, y1 * sh)
    out = np.asarray(img.resize(dst_wh, Image.Resampling.BILINEAR, box=box))
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)
