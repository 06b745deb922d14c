"""Vectorised NumPy ray casting of a `World`: camera images with exact depth (lidar scans: pipeline.synth.lidar).

Shape legend: P rays (pixels), N boxes, H height, W width, R x C a grid of rays (image rows x columns, or lidar
beams x azimuths). Vectors are stored component-first (3 x P, "structure of arrays"): NumPy's small-matrix products
and reductions over a trailing axis of 3 are slow, per-component arithmetic on long arrays is fast.
Pixel convention: pixel (u, v) has its centre at integer coordinates (see pipeline.schema), so the ray of pixel
(u, v) is K^-1 [u, v, 1]. Camera frame: x right, y down, z forward; depth = camera z.
Textures are functions of world (or, for moving cars, car-local) surface coordinates, band-limited by the pixel
footprint (octaves shorter than ~3 pixel footprints fade to their mean), so a surface looks the same from nearby frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.synth.world import (
    LANE_ONCOMING,
    LANE_SAME,
    MAT_CABIN,
    MAT_CAR,
    MAT_FACADE,
    MAT_ROAD,
    MAT_SIDEWALK,
    MAT_SKY,
    ROAD_HALF_WIDTH,
    World,
)

SKY_DEPTH = 1000.0  # depth (camera z, metres) stored for sky pixels in the truth files
_EPS = 1e-4
_NOISE_SIZE = 256


@dataclass(frozen=True, kw_only=True)
class Hit:
    """Nearest intersection of each ray: distance along the ray direction (inf: nothing), box id (0 = road or sky,
    i + 1 = box i), material, surface point and face normal in world coordinates."""

    t_P: np.ndarray  # float32
    box_P: np.ndarray  # int32
    material_P: np.ndarray  # int32
    point_3P: np.ndarray  # float32 world coordinates (0 where nothing is hit)
    axis_P: np.ndarray  # int64 axis of the face normal (road: 1)
    sign_P: np.ndarray  # float32 sign of the face normal along that axis (road: -1, i.e. up)


_BOX_EDGES = np.array(
    [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
)
_CORNER_BITS = np.array([[(i >> 0) & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=np.float64)


def tangent_bounds(lo_N3, hi_N3, pose_cam_to_world, near=0.05) -> np.ndarray:
    """(xmin, xmax, ymin, ymax) of x/z and y/z over each box in a z-forward sensor frame (NaN: not in front).

    Exact for convex boxes: the projection of the box clipped to z >= near is bounded by its projected corners and
    the points where its edges cross the near plane."""
    corners = lo_N3[:, None, :] + _CORNER_BITS[None] * (hi_N3 - lo_N3)[:, None, :]  # N, 8, 3
    cam = (corners - pose_cam_to_world[:3, 3]) @ pose_cam_to_world[:3, :3]  # N, 8, 3 in the sensor frame
    a = cam[:, _BOX_EDGES[:, 0]]
    b = cam[:, _BOX_EDGES[:, 1]]
    crossing = (a[..., 2] - near) * (b[..., 2] - near) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(crossing, (near - a[..., 2]) / np.where(crossing, b[..., 2] - a[..., 2], 1.0), 0.0)
    cross_pts = np.where(crossing[..., None], a + s[..., None] * (b - a), np.nan)
    pts = np.concatenate([np.where((cam[..., 2] >= near)[..., None], cam, np.nan), cross_pts], axis=1)
    z = np.maximum(pts[..., 2], near)
    tx = pts[..., 0] / z
    ty = pts[..., 1] / z
    out = np.full((lo_N3.shape[0], 4), np.nan)
    ok = np.isfinite(tx).any(axis=1)
    out[ok, 0] = np.nanmin(tx[ok], axis=1)
    out[ok, 1] = np.nanmax(tx[ok], axis=1)
    out[ok, 2] = np.nanmin(ty[ok], axis=1)
    out[ok, 3] = np.nanmax(ty[ok], axis=1)
    return out


def _pinhole_slices(lo_N3, hi_N3, pose_cam_to_world, K_33, size_wh) -> np.ndarray:
    """Pixel rectangle (r0, r1, c0, c1) covering each box's projection (empty when not visible)."""
    w, h = size_wh
    tb = tangent_bounds(lo_N3, hi_N3, pose_cam_to_world)
    ok = np.isfinite(tb[:, 0])
    tb = np.nan_to_num(tb)
    u0 = np.floor(K_33[0, 0] * tb[:, 0] + K_33[0, 2]) - 1
    u1 = np.ceil(K_33[0, 0] * tb[:, 1] + K_33[0, 2]) + 2
    v0 = np.floor(K_33[1, 1] * tb[:, 2] + K_33[1, 2]) - 1
    v1 = np.ceil(K_33[1, 1] * tb[:, 3] + K_33[1, 2]) + 2
    out = np.stack([np.clip(v0, 0, h), np.clip(v1, 0, h), np.clip(u0, 0, w), np.clip(u1, 0, w)], axis=1)
    out[~ok] = 0
    return out.astype(np.int64)


def rotate_3RC(R_33: np.ndarray, v_3RC: np.ndarray) -> np.ndarray:
    """R @ v for component-first vectors v (3 x ...), float32."""
    R = np.asarray(R_33, dtype=np.float32)
    return np.stack([R[i, 0] * v_3RC[0] + R[i, 1] * v_3RC[1] + R[i, 2] * v_3RC[2] for i in range(3)])


def cast(world: World, origin_3: np.ndarray, dirs_3RC: np.ndarray, time: float, *,
         slices_N4: np.ndarray | None = None, max_t: float = np.inf) -> Hit:
    """Intersect rays origin + t * dir (t > 0), a grid of R x C directions (component-first), with the road plane
    and every box at `time`.

    `slices_N4` (r0, r1, c0, c1) per box restricts the rays tested against that box (a conservative bound of the
    box's footprint on the ray grid); None tests every ray. Results are flattened to P = R * C rays."""
    o = np.asarray(origin_3, dtype=np.float64)
    d = np.asarray(dirs_3RC, dtype=np.float32)
    rows, cols = d.shape[1:]
    # Road plane Y = 0 (rays pointing down, dy > 0, from an origin above it, oy < 0).
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(d[1] > 1e-6, np.float32(-o[1]) / d[1], np.inf).astype(np.float32)
    best_t = np.minimum(t_ground, np.float32(max_t))
    best_box: np.ndarray = np.full((rows, cols), -1, dtype=np.int32)

    lo, hi = world.boxes_at(time)
    if slices_N4 is None:
        slices_N4 = np.tile(np.array([0, rows, 0, cols]), (lo.shape[0], 1))
    centre = 0.5 * (lo + hi)
    radius = 0.5 * np.linalg.norm(hi - lo, axis=1)
    near_enough = np.linalg.norm(centre - o, axis=1) - radius < min(max_t, 400.0)
    nonempty = (slices_N4[:, 1] > slices_N4[:, 0]) & (slices_N4[:, 3] > slices_N4[:, 2])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = (1.0 / np.where(np.abs(d) < 1e-12, np.float32(1e-12), d)).astype(np.float32)
        lo_o = (lo - o).astype(np.float32)
        hi_o = (hi - o).astype(np.float32)
        for i in np.nonzero(near_enough & nonempty)[0]:
            r0, r1, c0, c1 = slices_N4[i]
            tnear: Any = None
            tfar: Any = None
            for a in range(3):
                iv = inv[a, r0:r1, c0:c1]
                t1 = lo_o[i, a] * iv
                t2 = hi_o[i, a] * iv
                if tnear is None:
                    tnear, tfar = np.minimum(t1, t2), np.maximum(t1, t2)
                else:
                    np.maximum(tnear, np.minimum(t1, t2), out=tnear)
                    np.minimum(tfar, np.maximum(t1, t2), out=tfar)
            bt = best_t[r0:r1, c0:c1]
            better = (tnear <= tfar) & (tnear > _EPS) & (tnear < bt)
            bt[better] = tnear[better]
            best_box[r0:r1, c0:c1][better] = i

    best_t = best_t.ravel()
    best_box = best_box.ravel()
    d = d.reshape(3, -1)
    num = best_t.shape[0]
    hit_any = np.isfinite(best_t) & (best_t < max_t)
    is_box = best_box >= 0
    material = np.full(num, MAT_SKY, dtype=np.int32)
    ground = hit_any & ~is_box
    t_fin = np.where(hit_any, best_t, np.float32(0.0))
    point = o.astype(np.float32)[:, None] + t_fin[None] * d
    axis = np.ones(num, dtype=np.int64)
    sign = np.full(num, -1.0, dtype=np.float32)
    material[ground] = np.where(np.abs(point[0, ground]) < ROAD_HALF_WIDTH, MAT_ROAD, MAT_SIDEWALK)
    if is_box.any():
        idx = np.nonzero(is_box)[0]
        b = best_box[idx]
        material[idx] = world.material_N[b]
        p = point[:, idx]
        # The face hit: the axis on which the point lies on the box's lo or hi plane.
        dl = np.abs(p - lo[b].T.astype(np.float32))
        dh = np.abs(p - hi[b].T.astype(np.float32))
        ax = np.argmin(np.minimum(dl, dh), axis=0)
        axis[idx] = ax
        sign[idx] = np.where(np.take_along_axis(dl, ax[None], 0)[0] < np.take_along_axis(dh, ax[None], 0)[0],
                             -1.0, 1.0)
    box_id = np.where(is_box, best_box + 1, 0).astype(np.int32)
    t_out = np.where(hit_any, best_t, np.inf).astype(np.float32)
    return Hit(t_P=t_out, box_P=box_id, material_P=material, point_3P=point, axis_P=axis, sign_P=sign)


class _Noise:
    """Value noise from per-world random grids; `octaves` are (wavelength m, amplitude)."""

    def __init__(self, seed: int, layers: int = 4):
        rng = np.random.default_rng(seed + 7919)
        self.grids = rng.random((layers, _NOISE_SIZE, _NOISE_SIZE), dtype=np.float32) * 2.0 - 1.0

    def sample(self, layer: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        g = self.grids[layer % len(self.grids)]
        fa = np.floor(a)
        fb = np.floor(b)
        ta = (a - fa).astype(np.float32)
        tb = (b - fb).astype(np.float32)
        ia = fa.astype(np.int64) & (_NOISE_SIZE - 1)
        ib = fb.astype(np.int64) & (_NOISE_SIZE - 1)
        ia1 = (ia + 1) & (_NOISE_SIZE - 1)
        ib1 = (ib + 1) & (_NOISE_SIZE - 1)
        ta = ta * ta * (3 - 2 * ta)
        tb = tb * tb * (3 - 2 * tb)
        top = g[ia, ib] * (1 - tb) + g[ia, ib1] * tb
        bot = g[ia1, ib] * (1 - tb) + g[ia1, ib1] * tb
        return top * (1 - ta) + bot * ta

    def fbm(self, a, b, footprint, octaves, offset: float = 0.0) -> np.ndarray:
        out = np.zeros(a.shape, dtype=np.float32)
        for k, (wavelength, amp) in enumerate(octaves):
            w = np.clip(wavelength / np.maximum(footprint, 1e-6) / 1.5 - 1.0, 0.0, 1.0).astype(np.float32)
            if not w.any():
                continue
            out += amp * w * self.sample(k, a / wavelength + offset, b / wavelength - offset)
        return out


def _band(coord, lo, hi, footprint):
    """Antialiased indicator of lo <= coord <= hi (box filter of width `footprint`)."""
    fp = np.maximum(footprint, 1e-6)
    return np.clip((np.minimum(coord - lo, hi - coord)) / fp + 0.5, 0.0, 1.0)


def _periodic_band(coord, period, frac, footprint):
    """Antialiased indicator of the first `frac` of each period; fades to its mean `frac` when sub-pixel."""
    f = np.mod(coord, period)
    cover = np.maximum(_band(f, 0.0, frac * period, footprint), _band(f, period, period + frac * period, footprint))
    fade = np.clip(period / np.maximum(footprint, 1e-6) / 3.0 - 1.0, 0.0, 1.0)
    return fade * cover + (1 - fade) * frac


class Shader:
    """Colours for the hits of one world."""

    def __init__(self, world: World):
        self.world = world
        self.noise = _Noise(world.seed)
        # Per-world lighting: sun azimuth and elevation, ambient share, a slight sky tint.
        rng = np.random.default_rng(world.seed + 104729)
        az, el = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.2)
        self.sun_3 = np.array([np.cos(el) * np.sin(az), -np.sin(el), np.cos(el) * np.cos(az)], dtype=np.float32)
        self.ambient = np.float32(rng.uniform(0.4, 0.6))
        tint = rng.uniform(-0.05, 0.05, size=3).astype(np.float32)
        self.horizon = np.clip(np.array([0.78, 0.83, 0.88], dtype=np.float32) + tint, 0, 1)[:, None]
        self.zenith = np.clip(np.array([0.35, 0.55, 0.85], dtype=np.float32) + tint, 0, 1)[:, None]

    def sky(self, dirs_3P: np.ndarray) -> np.ndarray:
        elev = -dirs_3P[1] / np.sqrt(dirs_3P[0] ** 2 + dirs_3P[1] ** 2 + dirs_3P[2] ** 2)
        s = np.clip(elev * 2.5, 0.0, 1.0)[None]
        return self.horizon * (1 - s) + self.zenith * s

    def shade(self, hit: Hit, dirs_3P: np.ndarray, footprint_P: np.ndarray, time: float) -> np.ndarray:
        """RGB float32 in [0, 1], 3 x P."""
        num = hit.t_P.shape[0]
        rgb = np.empty((3, num), dtype=np.float32)
        mat = hit.material_P
        sky = mat == MAT_SKY
        if sky.any():
            rgb[:, sky] = self.sky(dirs_3P[:, sky])
        sun = self.sun_3[hit.axis_P] * hit.sign_P
        lambert = self.ambient + (1 - self.ambient) * np.clip(sun, 0, 1)
        nz = self.noise
        for m in (MAT_ROAD, MAT_SIDEWALK):
            sel = np.nonzero(mat == m)[0]
            if not sel.size:
                continue
            x = hit.point_3P[0, sel]
            z = hit.point_3P[2, sel]
            fp = footprint_P[sel]
            n = nz.fbm(x, z, fp, ((4.0, 0.3), (0.9, 0.3), (0.25, 0.4), (0.07, 0.45)))
            if m == MAT_ROAD:
                base = np.float32(0.36) + 0.16 * n
                line = np.zeros_like(base)
                for xl in (LANE_SAME / 2, -LANE_SAME / 2):  # dashed lines between the lanes
                    dash = _periodic_band(z, 9.0, 0.35, fp)
                    line = np.maximum(line, _band(x, xl - 0.08, xl + 0.08, fp) * dash)
                for xl in (ROAD_HALF_WIDTH - 0.3, -ROAD_HALF_WIDTH + 0.3, LANE_ONCOMING - 1.9):
                    line = np.maximum(line, _band(x, xl - 0.1, xl + 0.1, fp))
                grey = base * (1 - line) + np.float32(0.92) * line
                c = np.stack([grey, grey, grey * 1.03])
            else:
                tiles = _periodic_band(x, 0.6, 0.06, fp) + _periodic_band(z, 0.6, 0.06, fp)
                grey = np.float32(0.62) + 0.14 * n - 0.2 * np.clip(tiles, 0, 1)
                c = np.stack([grey * 1.02, grey, grey * 0.94])
            rgb[:, sel] = c * lambert[sel]
        boxes = np.nonzero(mat >= MAT_FACADE)[0]
        if boxes.size:
            rgb[:, boxes] = self._shade_boxes(hit, boxes, footprint_P[boxes], time) * lambert[boxes]
        return np.clip(rgb, 0.0, 1.0)

    def _shade_boxes(self, hit: Hit, sel: np.ndarray, fp: np.ndarray, time: float) -> np.ndarray:
        w = self.world
        b = hit.box_P[sel] - 1
        lo = w.lo_N3[b].astype(np.float32)
        px = hit.point_3P[0, sel] - lo[:, 0]
        py = hit.point_3P[1, sel] - lo[:, 1]
        pz = hit.point_3P[2, sel] - lo[:, 2] - (w.speed_N[b] * time).astype(np.float32)  # car-local when moving
        ax = hit.axis_P[sel]
        # Surface coordinates in metres from the box corner: `a` along the face, `up` height above the box bottom
        # on vertical faces (Y is down and lo is the top), Z on the roof.
        a = np.where(ax == 0, pz, px)
        height = (w.hi_N3[b, 1] - w.lo_N3[b, 1]).astype(np.float32)
        up = np.where(ax == 1, pz, height - py)
        offset = (b.astype(np.float32) * 17.31) % 97.0
        noise = self.noise.fbm(a + offset, up, fp, ((3.0, 0.2), (0.7, 0.25), (0.18, 0.3), (0.05, 0.3)), 0.37)
        out = w.colour_N3[b].T * (1.0 + 0.45 * noise)
        mat = hit.material_P[sel]
        vertical = ax != 1

        def blend(mask, amount, colour):
            nonlocal out
            f = amount * mask
            out = out * (1 - f) + colour * f

        facade = (mat == MAT_FACADE) & vertical
        if facade.any():
            # Window grid: columns every pattern[0] metres, floors every 3.2 m, ground floor without windows.
            pat = w.pattern_N2[b]
            col = _periodic_band(a + 0.5, pat[:, 0], pat[:, 1], fp)
            row = _periodic_band(up - 0.9, 3.2, 0.5, fp)
            win = col * row * (up > 3.0) * _band(up, 3.0, height - 1.0, fp)
            blend(facade, win, np.stack([0.15 + 0.25 * noise, 0.2 + 0.25 * noise, 0.28 + 0.25 * noise]))
        car = (mat == MAT_CAR) & vertical
        if car.any():
            # Wheels / shadow near the road, a band of lights near the top of the front and back faces.
            blend(car, _band(up, -1.0, 0.28, fp), np.float32(0.06))
            lights = _band(up, 0.55 * height, 0.75 * height, fp) * (ax == 2) * _periodic_band(a + 0.1, 1.9, 0.2, fp)
            blend(car, lights, np.array([0.9, 0.75, 0.6], dtype=np.float32)[:, None])
        cabin = (mat == MAT_CABIN) & vertical
        if cabin.any():
            # Glass with pillars; the roof keeps the body colour.
            glass = _band(up, 0.05, 0.97 * height, fp) * (1 - _periodic_band(a + 0.12, 1.3, 0.12, fp))
            blend(cabin, glass, np.stack([0.1 + 0.12 * noise, 0.13 + 0.12 * noise, 0.17 + 0.12 * noise]))
        return out


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One rendered camera image with its exact truth."""

    rgb_HW3: np.ndarray  # uint8
    depth_HW: np.ndarray  # float32 camera z in metres; SKY_DEPTH for sky
    instance_HW: np.ndarray  # int32: 0 road/sky, j + 1 object j
    moving_HW: np.ndarray  # bool: pixels of moving cars
    sky_HW: np.ndarray  # bool


class Camera:
    """Renders a world through a pinhole camera of intrinsics K (3x3) and size (W, H)."""

    def __init__(self, world: World, K_33: np.ndarray, size_wh: tuple[int, int]):
        self.world = world
        self.K = np.asarray(K_33, dtype=np.float64)
        self.size_wh = size_wh
        w, h = size_wh
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        Kinv = np.linalg.inv(self.K)
        pix = (u, v, np.ones_like(u))
        # Ray of each pixel centre in the camera frame, z = 1 so that the distance along it is the depth.
        self.rays_cam_3HW = np.stack(
            [sum(Kinv[i, j] * pix[j] for j in range(3)) for i in range(3)]
        ).astype(np.float32)
        self.shader = Shader(world)

    def render(self, pose_cam_to_world: np.ndarray, time: float) -> Frame:
        w, h = self.size_wh
        dirs = rotate_3RC(pose_cam_to_world[:3, :3], self.rays_cam_3HW)
        lo, hi = self.world.boxes_at(time)
        slices = _pinhole_slices(lo, hi, pose_cam_to_world, self.K, self.size_wh)
        hit = cast(self.world, pose_cam_to_world[:3, 3], dirs, time, slices_N4=slices)
        depth = hit.t_P  # camera z because the camera-frame rays have z = 1
        d = dirs.reshape(3, -1)
        norm = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
        cos = np.abs(np.take_along_axis(d, hit.axis_P[None], 0)[0]) / norm
        sky = ~np.isfinite(depth)
        depth = np.where(sky, np.float32(SKY_DEPTH), depth).astype(np.float32)
        footprint = depth * norm / np.float32(self.K[0, 0]) / np.sqrt(np.maximum(cos, 0.05))
        rgb = self.shader.shade(hit, d, footprint.astype(np.float32), time)
        box = hit.box_P.reshape(h, w)
        return Frame(
            rgb_HW3=np.ascontiguousarray((rgb * 255.0 + 0.5).astype(np.uint8).reshape(3, h, w).transpose(1, 2, 0)),
            depth_HW=depth.reshape(h, w),
            instance_HW=self.world.instance_ids(box),
            moving_HW=self.world.moving_mask(box),
            sky_HW=sky.reshape(h, w),
        )
