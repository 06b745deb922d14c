"""Pinhole intrinsics under image resize, crop and horizontal flip (pure NumPy).

Convention: pixel centres at integer coordinates (see `pipeline.schema`). Under that convention a resize by
s = W'/W maps u to s*(u + 0.5) - 0.5, so fx' = s*fx and cx' = s*(cx + 0.5) - 0.5; a crop that starts at (x0, y0)
shifts the principal point by -x0, -y0; a horizontal flip of a W-wide image maps u to W - 1 - u, so cx' = W - 1 - cx.
"""

from __future__ import annotations

import numpy as np


def resize_K(K_33: np.ndarray, src_wh: tuple[float, float], dst_wh: tuple[float, float]) -> np.ndarray:
    sx = dst_wh[0] / src_wh[0]
    sy = dst_wh[1] / src_wh[1]
    K = np.array(K_33, dtype=np.float64).copy()
    K[0, 0] *= sx
    K[0, 1] *= sx
    K[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
    K[1, 1] *= sy
    K[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
    return K


def crop_K(K_33: np.ndarray, x0: float, y0: float) -> np.ndarray:
    K = np.array(K_33, dtype=np.float64).copy()
    K[0, 2] -= x0
    K[1, 2] -= y0
    return K


def flip_K(K_33: np.ndarray, width: int) -> np.ndarray:
    K = np.array(K_33, dtype=np.float64).copy()
    K[0, 2] = width - 1 - K[0, 2]
    return K
