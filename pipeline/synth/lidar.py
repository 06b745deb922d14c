"""A spinning lidar over a synthetic `World`: 64-beam-like ray directions and the points they hit, cast with the
camera's vectorised ray caster (pipeline.synth.render); same shape legend and conventions as there.
"""

from __future__ import annotations

import numpy as np

from pipeline.synth.render import cast, rotate_3RC, tangent_bounds
from pipeline.synth.world import World

_VELO_TO_ZFWD = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # velo (x fwd, y left, z up)
LIDAR_MAX_AZIMUTH = np.pi / 2
LIDAR_ELEVATION_DEG = (2.0, -24.8)


def lidar_directions(num_beams: int, num_azimuths: int) -> np.ndarray:
    """Unit ray directions (beams x azimuths x 3) of a 64-beam-like spinning lidar in its own frame (x forward,
    y left, z up): elevations from +2 down to -24.8 degrees (HDL-64E), azimuths over the front half (x > 0),
    increasing from right (-90 degrees) to left (+90 degrees). The front half is all that projects into the cameras."""
    elev = np.deg2rad(np.linspace(*LIDAR_ELEVATION_DEG, num_beams))
    azim = np.linspace(-LIDAR_MAX_AZIMUTH, LIDAR_MAX_AZIMUTH, num_azimuths, endpoint=False) + (
        LIDAR_MAX_AZIMUTH / num_azimuths
    )
    e, a = np.meshgrid(elev, azim, indexing="ij")
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], axis=-1)


def _elevation_rows(lo_N3, hi_N3, origin_3, num_beams, pad_deg=1.5) -> tuple[np.ndarray, np.ndarray]:
    """Beam rows [r0, r1) that can hit each world box, from the box's elevation range seen from the lidar
    (world Y is down; the lidar's up axis is within a degree of -Y, covered by `pad_deg`)."""
    dx = np.maximum(np.maximum(lo_N3[:, 0] - origin_3[0], origin_3[0] - hi_N3[:, 0]), 0.0)
    dz = np.maximum(np.maximum(lo_N3[:, 2] - origin_3[2], origin_3[2] - hi_N3[:, 2]), 0.0)
    rho_min = np.hypot(dx, dz)
    fx = np.maximum(np.abs(lo_N3[:, 0] - origin_3[0]), np.abs(hi_N3[:, 0] - origin_3[0]))
    fz = np.maximum(np.abs(lo_N3[:, 2] - origin_3[2]), np.abs(hi_N3[:, 2] - origin_3[2]))
    rho_max = np.hypot(fx, fz)
    top = origin_3[1] - lo_N3[:, 1]  # height of the box top above the lidar
    bottom = origin_3[1] - hi_N3[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        e_max = np.arctan2(top, np.where(top > 0, rho_min, rho_max))
        e_min = np.arctan2(bottom, np.where(bottom < 0, rho_min, rho_max))
    e0, e1 = np.deg2rad(LIDAR_ELEVATION_DEG)
    step = (e0 - e1) / max(num_beams - 1, 1)
    pad = np.deg2rad(pad_deg)
    r0 = np.clip(np.floor((e0 - (e_max + pad)) / step), 0, num_beams)
    r1 = np.clip(np.ceil((e0 - (e_min - pad)) / step) + 1, 0, num_beams)
    return r0.astype(np.int64), r1.astype(np.int64)


_REFLECTANCE = np.array([0.0, 0.25, 0.3, 0.35, 0.5, 0.6, 0.15], dtype=np.float32)


def scan_lidar(world: World, pose_velo_to_world: np.ndarray, dirs_velo_BA3: np.ndarray, time: float,
               max_range: float = 120.0) -> np.ndarray:
    """Points hit by the lidar rays (from `lidar_directions`), float32 N x 4: x, y, z in the velodyne frame and a
    reflectance in [0, 1]; rays that hit nothing within `max_range` (the sky) give no point."""
    beams, azims = dirs_velo_BA3.shape[:2]
    R = pose_velo_to_world[:3, :3]
    dirs_velo = np.ascontiguousarray(dirs_velo_BA3.transpose(2, 0, 1), dtype=np.float32)
    dirs = rotate_3RC(R, dirs_velo)
    # Column range of each box from its azimuth extent (atan of the tangent bound in a z-forward frame).
    zfwd = np.eye(4)
    zfwd[:3, :3] = R @ _VELO_TO_ZFWD.T
    zfwd[:3, 3] = pose_velo_to_world[:3, 3]
    lo, hi = world.boxes_at(time)
    tb = tangent_bounds(lo, hi, zfwd, near=1e-5)
    ok = np.isfinite(tb[:, 0])
    tb = np.nan_to_num(tb)
    step = 2 * LIDAR_MAX_AZIMUTH / azims
    az_lo = np.arctan(-tb[:, 1])  # azimuth = atan2(y, x) = atan(-x_zfwd / z_zfwd)
    az_hi = np.arctan(-tb[:, 0])
    c0 = np.clip(np.floor((az_lo + LIDAR_MAX_AZIMUTH) / step) - 2, 0, azims)
    c1 = np.clip(np.ceil((az_hi + LIDAR_MAX_AZIMUTH) / step) + 3, 0, azims)
    r0, r1 = _elevation_rows(lo, hi, pose_velo_to_world[:3, 3], beams)
    slices = np.stack([r0, r1, c0, c1], axis=1).astype(np.int64)
    slices[~ok] = 0
    hit = cast(world, pose_velo_to_world[:3, 3], dirs, time, slices_N4=slices, max_t=max_range)
    ok = np.isfinite(hit.t_P) & (hit.t_P > 0.5)
    t = hit.t_P[ok]
    dv = dirs_velo.reshape(3, -1)[:, ok]
    return np.stack([dv[0] * t, dv[1] * t, dv[2] * t, _REFLECTANCE[hit.material_P[ok]]], axis=1).astype(np.float32)
