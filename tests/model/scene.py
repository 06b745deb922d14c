"""An analytic test scene: a textured "street" of planes rendered exactly by ray casting, with exact depth.

Shape legend: H, W image size. World frame = the target camera's frame (x right, y down, z forward).
"""

from __future__ import annotations

import math

import torch

# planes n . X = d (world frame): ground, left wall, right wall, far wall
_PLANES = (
    ((0.0, 1.0, 0.0), 1.6),
    ((1.0, 0.0, 0.0), -3.0),
    ((1.0, 0.0, 0.0), 3.0),
    ((0.0, 0.0, 1.0), 16.0),
)
# texture: sum of 3D sinusoids per channel (frequency vector rad/m, amplitude, phase)
_WAVES = (
    ((1.1, 0.0, 0.7), 0.18, 0.0),
    ((0.0, 0.9, 1.2), 0.14, 1.0),
    ((0.6, 1.5, 0.0), 0.10, 2.0),
    ((1.9, 0.0, 1.6), 0.08, 0.5),
)


def intrinsics(height: int, width: int) -> torch.Tensor:
    """KITTI-like intrinsics in the pixel-centre convention, K_33 (float32)."""
    return torch.tensor(
        [[0.58 * width, 0.0, 0.5 * width - 0.5], [0.0, 1.92 * height, 0.5 * height - 0.5], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )


def rotation_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def texture(points_N3: torch.Tensor) -> torch.Tensor:
    cols = []
    for channel in range(3):
        value = torch.full_like(points_N3[:, 0], 0.5)
        for k, (freq, amp, phase) in enumerate(_WAVES):
            f = torch.tensor(freq, dtype=points_N3.dtype).roll(channel)
            value = value + amp * torch.sin(points_N3 @ f * (1.0 + 0.15 * channel) + phase + k * channel)
        cols.append(value)
    return torch.stack(cols, dim=1).clamp(0, 1)


def render(
    height: int,
    width: int,
    *,
    center: tuple[float, float, float] = (0.0, 0.0, 0.0),
    R_wc: torch.Tensor | None = None,
    moving_box: tuple[float, float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render the scene from a camera at `center` with camera-to-world rotation R_wc.

    moving_box: optional world offset of a textured box (x in [-1, 0.4], y in [0.2, 1.6], front face z = 8 + dz)
    whose texture moves with it (an independently moving object).
    Returns (image_3HW float32 in [0, 1], depth_1HW float32 metres, z in the camera frame).
    """
    K = intrinsics(height, width)
    R = torch.eye(3, dtype=torch.float64) if R_wc is None else R_wc
    c = torch.tensor(center, dtype=torch.float64)
    v, u = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    pix_N3 = torch.stack([u.flatten(), v.flatten(), torch.ones(height * width, dtype=torch.float64)], dim=1)
    rays_cam_N3 = pix_N3 @ torch.linalg.inv(K).T  # z = 1
    rays_N3 = rays_cam_N3 @ R.T
    best_t = torch.full((height * width,), float("inf"), dtype=torch.float64)
    colour = torch.zeros(height * width, 3, dtype=torch.float64)
    for normal, d in _PLANES:
        n = torch.tensor(normal, dtype=torch.float64)
        denom = rays_N3 @ n
        t = (d - c @ n) / torch.where(denom.abs() < 1e-9, torch.full_like(denom, 1e-9), denom)
        hit = (t > 0) & (t < best_t)
        best_t = torch.where(hit, t, best_t)
        points = c + t[:, None] * rays_N3
        colour = torch.where(hit[:, None], texture(points), colour)
    if moving_box is not None:
        off = torch.tensor(moving_box, dtype=torch.float64)
        # front face z = 8 + off_z (box frame), x in [-1, 0.4], y in [0.2, 1.6] (box frame)
        n = torch.tensor((0.0, 0.0, 1.0), dtype=torch.float64)
        t = (8.0 + off[2] - c @ n) / (rays_N3 @ n).clamp(min=1e-9)
        points = c + t[:, None] * rays_N3
        local = points - off
        hit = (t > 0) & (t < best_t) & (local[:, 0] >= -1.0) & (local[:, 0] <= 0.4)
        hit &= (local[:, 1] >= 0.2) & (local[:, 1] <= 1.6)
        best_t = torch.where(hit, t, best_t)
        colour = torch.where(hit[:, None], 1.0 - texture(local * 1.7), colour)
    image = colour.T.reshape(3, height, width).float()
    depth = best_t.reshape(1, height, width).float()  # ray z component is 1, so t = z-depth
    return image, depth


def T_target_to_source(
    center_s: tuple[float, float, float], R_wc_s: torch.Tensor | None = None
) -> torch.Tensor:
    """T_target->source (4x4 float32) for a target camera at the world origin with identity rotation."""
    R = torch.eye(3, dtype=torch.float64) if R_wc_s is None else R_wc_s
    c = torch.tensor(center_s, dtype=torch.float64)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = R.T
    T[:3, 3] = -R.T @ c
    return T.float()
