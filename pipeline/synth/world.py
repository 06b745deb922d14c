"""A random street world: road, sidewalks, building blocks, street furniture, parked and moving cars, and the
ego car's trajectory. Pure data, no rendering.

World frame W (metres): X right (across the street), Y down, Z forward along the street; the road is the plane
Y = 0, so points above the road have negative Y. Time t in seconds from the first frame.
Every object is an axis-aligned box in W. Moving cars translate along Z: box(t) = box(0) + (0, 0, speed * t).
The ego rig (the rectified reference camera, KITTI's rectified cam0) sits at height `camera_height`, heading
yaw(t) about the Y axis (positive = towards +X, i.e. turning right).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.synth.config import WorldConfig

# Materials (index into the renderer's material table).
MAT_SKY, MAT_ROAD, MAT_SIDEWALK, MAT_FACADE, MAT_STATIC, MAT_CAR, MAT_CABIN = 0, 1, 2, 3, 4, 5, 6
MATERIAL_NAMES = ("sky", "road", "sidewalk", "facade", "static", "car", "cabin")

ROAD_HALF_WIDTH = 7.5
LANE_EGO, LANE_SAME, LANE_ONCOMING = 0.0, 3.5, -3.5
PARKING_X = 6.2


@dataclass(frozen=True, kw_only=True)
class World:
    """Boxes grouped into objects (a car is a body box and a cabin box), and the ego trajectory sampled on a fine
    time grid. Object j has instance id j + 1 in the truth files (0 = road, sidewalk, sky)."""

    lo_N3: np.ndarray  # float64 box minimum corner at t = 0
    hi_N3: np.ndarray  # float64 box maximum corner at t = 0
    speed_N: np.ndarray  # float64 velocity along +Z in m/s (0 = static)
    material_N: np.ndarray  # int material per box
    colour_N3: np.ndarray  # float32 base colour in [0, 1]
    pattern_N2: np.ndarray  # float32 per-box pattern parameters (window spacing, window fraction)
    object_N: np.ndarray  # int object index of each box
    traj_t: np.ndarray  # float64 time grid of the ego trajectory
    traj_xzyaw_T3: np.ndarray  # float64 (x, z, yaw) of the ego rig at traj_t
    camera_height: float
    seed: int

    @property
    def num_boxes(self) -> int:
        return len(self.speed_N)

    def boxes_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        dz = self.speed_N * t
        lo = self.lo_N3.copy()
        hi = self.hi_N3.copy()
        lo[:, 2] += dz
        hi[:, 2] += dz
        return lo, hi

    def rig_pose(self, t: float) -> np.ndarray:
        """4x4 world-from-rig transform of the rectified reference camera (x right, y down, z forward) at t."""
        x = np.interp(t, self.traj_t, self.traj_xzyaw_T3[:, 0])
        z = np.interp(t, self.traj_t, self.traj_xzyaw_T3[:, 1])
        yaw = np.interp(t, self.traj_t, self.traj_xzyaw_T3[:, 2])
        c, s = np.cos(yaw), np.sin(yaw)
        T = np.eye(4)
        T[:3, :3] = [[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]]
        T[:3, 3] = [x, -self.camera_height, z]
        return T

    def rig_velocity(self, t: float, dt: float = 1e-3) -> tuple[float, float]:
        """(forward speed m/s, yaw rate rad/s) of the ego rig at t."""
        a = self.rig_pose(max(t - dt, 0.0))
        b = self.rig_pose(t + dt)
        span = t + dt - max(t - dt, 0.0)
        speed = float(np.linalg.norm(b[:3, 3] - a[:3, 3]) / span)
        yaw_a = np.arctan2(a[0, 2], a[2, 2])
        yaw_b = np.arctan2(b[0, 2], b[2, 2])
        return speed, float((yaw_b - yaw_a) / span)

    def moving_mask(self, box_plus1: np.ndarray) -> np.ndarray:
        """Boolean mask of pixels whose box id (0 = road/sky, i + 1 = box i) belongs to a moving car."""
        moving = np.concatenate([[False], self.speed_N != 0])
        return moving[box_plus1]

    def instance_ids(self, box_plus1: np.ndarray) -> np.ndarray:
        """Instance ids (0 = road/sky, j + 1 = object j) from box ids (0 = road/sky, i + 1 = box i)."""
        ids = np.concatenate([[0], self.object_N + 1]).astype(np.int32)
        return ids[box_plus1]

    def describe(self) -> dict:
        """A JSON-serialisable description (for rmdepth_truth/world.json)."""
        return {
            "frame": "X right, Y down (road plane Y=0), Z forward along the street; metres, seconds",
            "seed": self.seed,
            "camera_height": self.camera_height,
            "boxes": [
                {
                    "instance": int(self.object_N[i]) + 1,
                    "material": MATERIAL_NAMES[int(self.material_N[i])],
                    "lo_at_t0": [round(float(v), 4) for v in self.lo_N3[i]],
                    "hi_at_t0": [round(float(v), 4) for v in self.hi_N3[i]],
                    "speed_z": round(float(self.speed_N[i]), 4),
                }
                for i in range(self.num_boxes)
            ],
        }


def _trajectory(cfg: WorldConfig, duration: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    dt = 0.005
    t = np.arange(0.0, duration + 1.0, dt)
    amp = np.deg2rad(cfg.turn_amplitude_deg) * rng.uniform(0.5, 1.0)
    period = rng.uniform(8.0, 14.0)
    if amp > 0 and cfg.ego_speed > 0:
        period = min(period, 2 * np.pi * 1.0 / (amp * cfg.ego_speed * 1.1))  # lateral weaving stays within 1 m
    phase = rng.uniform(0, 2 * np.pi)
    yaw = amp * np.sin(2 * np.pi * t / period + phase)
    speed = cfg.ego_speed * (1.0 + 0.1 * np.sin(2 * np.pi * t / rng.uniform(6.0, 12.0) + rng.uniform(0, 6.3)))
    if cfg.stop_fraction > 0:
        # Brake to a standstill for the middle `stop_fraction` of the drive (0.5 s ramps), then drive on.
        half = 0.5 * cfg.stop_fraction * duration
        mid = 0.5 * duration
        ramp = np.clip((np.abs(t - mid) - half) / 0.5, 0.0, 1.0)
        speed = speed * (ramp * ramp * (3 - 2 * ramp))
    vx = speed * np.sin(yaw)
    vz = speed * np.cos(yaw)
    x = np.concatenate([[0.0], np.cumsum(0.5 * (vx[1:] + vx[:-1]) * dt)])
    z = np.concatenate([[0.0], np.cumsum(0.5 * (vz[1:] + vz[:-1]) * dt)])
    x -= x.mean() if len(x) > 1 else 0.0  # keep the weaving centred on the ego lane
    return t, np.stack([x, z, yaw], axis=1)


class _Boxes:
    """The boxes of a world under construction (one row per box; a car is two boxes of one object)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.lo: list[Any] = []
        self.hi: list[Any] = []
        self.speed: list[float] = []
        self.mat: list[int] = []
        self.colour: list[Any] = []
        self.pattern: list[Any] = []
        self.obj: list[int] = []

    def add(self, lo3, hi3, m, col, pat=(3.0, 0.5), v=0.0, same_object=False) -> None:
        self.obj.append(self.obj[-1] if same_object else (self.obj[-1] + 1 if self.obj else 0))
        self.lo.append(lo3)
        self.hi.append(hi3)
        self.mat.append(m)
        self.colour.append(col)
        self.pattern.append(pat)
        self.speed.append(v)

    def car(self, xc: float, zc: float, v: float) -> None:
        """A body box and a narrower, shorter cabin box on top (one object)."""
        rng = self.rng
        length, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6)
        body = height * rng.uniform(0.55, 0.65)
        col = rng.uniform(0.1, 0.8, size=3) * rng.uniform(0.6, 1.0)
        self.add([xc - width / 2, -body, zc - length / 2], [xc + width / 2, 0.0, zc + length / 2], MAT_CAR, col,
                 (body, 0.0), v)
        cab_len = length * rng.uniform(0.45, 0.55)
        cab_z = zc + (rng.uniform(-0.15, 0.05) * length) * (1 if v >= 0 else -1)
        self.add([xc - width / 2 + 0.08, -height, cab_z - cab_len / 2],
                 [xc + width / 2 - 0.08, -body, cab_z + cab_len / 2], MAT_CABIN, col, (height - body, 0.0), v,
                 same_object=True)


def make_world(cfg: WorldConfig, *, duration: float, seed: int) -> World:
    """A street long enough for `duration` seconds of driving plus the view ahead."""
    rng = np.random.default_rng(seed)
    traj_t, traj = _trajectory(cfg, duration, rng)
    z_end = float(traj[-1, 1])
    z_min, z_max = -40.0, z_end + 220.0
    boxes = _Boxes(rng)
    for side in (-1.0, 1.0):
        _buildings(boxes, side, z_min, z_max)
    _street_furniture(boxes, cfg, z_min, z_max)
    for side in (-1.0, 1.0):  # parked cars along both curbs
        z = z_min + rng.uniform(0, 5)
        while z < z_max:
            slot = rng.uniform(5.5, 8.0)
            if rng.random() < cfg.parked_density:
                boxes.car(side * PARKING_X, z + slot / 2, 0.0)
            z += slot
    _moving_cars(boxes, cfg, z_end=z_end, duration=duration)
    return World(
        lo_N3=np.array(boxes.lo, dtype=np.float64),
        hi_N3=np.array(boxes.hi, dtype=np.float64),
        speed_N=np.array(boxes.speed, dtype=np.float64),
        material_N=np.array(boxes.mat, dtype=np.int64),
        colour_N3=np.array(boxes.colour, dtype=np.float32),
        pattern_N2=np.array(boxes.pattern, dtype=np.float32),
        object_N=np.array(boxes.obj, dtype=np.int64),
        traj_t=traj_t,
        traj_xzyaw_T3=traj,
        camera_height=cfg.camera_height,
        seed=seed,
    )


def _buildings(boxes: _Boxes, side: float, z_min: float, z_max: float) -> None:
    """Building blocks on one side: varying setback, length, height, colour and window grid; some gaps; then far
    background blocks so that gaps do not show the sky at street level."""
    rng = boxes.rng
    z = z_min
    while z < z_max:
        length = rng.uniform(8.0, 30.0)
        if rng.random() < 0.15:
            z += rng.uniform(3.0, 10.0)  # a gap between blocks: the view goes deeper there
            continue
        setback = ROAD_HALF_WIDTH + rng.uniform(2.5, 8.0)
        depth = rng.uniform(8.0, 15.0)
        height = rng.uniform(6.0, 24.0)
        x0, x1 = (setback, setback + depth) if side > 0 else (-setback - depth, -setback)
        col = rng.uniform(0.35, 0.85, size=3) * np.array([1.0, 0.95, 0.85])
        boxes.add([x0, -height, z], [x1, 0.0, z + length], MAT_FACADE, col,
                  (rng.uniform(2.5, 4.5), rng.uniform(0.35, 0.6)))
        z += length
    z = z_min
    while z < z_max:
        length = rng.uniform(20.0, 40.0)
        x0 = side * (ROAD_HALF_WIDTH + 26.0)
        x1 = x0 + side * 10.0
        col = rng.uniform(0.3, 0.7, size=3)
        boxes.add([min(x0, x1), -rng.uniform(10.0, 30.0), z], [max(x0, x1), 0.0, z + length], MAT_FACADE, col,
                  (rng.uniform(2.5, 4.5), rng.uniform(0.35, 0.6)))
        z += length


def _street_furniture(boxes: _Boxes, cfg: WorldConfig, z_min: float, z_max: float) -> None:
    """Poles, bins and kiosks on the sidewalks."""
    rng = boxes.rng
    num_static = int(round(cfg.num_static_per_100m * (z_max - z_min) / 100.0))
    for _ in range(num_static):
        side = rng.choice([-1.0, 1.0])
        xc = side * rng.uniform(ROAD_HALF_WIDTH + 0.6, ROAD_HALF_WIDTH + 2.2)
        zc = rng.uniform(z_min, z_max)
        kind = rng.random()
        if kind < 0.45:
            w, d, h = 0.25, 0.25, rng.uniform(3.0, 6.0)  # pole
        elif kind < 0.8:
            w, d, h = rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.3)  # bin / box
        else:
            w, d, h = rng.uniform(1.2, 2.0), rng.uniform(1.5, 3.0), rng.uniform(2.0, 2.8)  # kiosk
        col = rng.uniform(0.15, 0.9, size=3)
        boxes.add([xc - w / 2, -h, zc - d / 2], [xc + w / 2, 0.0, zc + d / 2], MAT_STATIC, col, (0.7, 0.3))


def _moving_cars(boxes: _Boxes, cfg: WorldConfig, *, z_end: float, duration: float) -> None:
    """One car ahead in the ego lane moving with the camera, then same-direction and oncoming platoons that share
    their lane's speed and keep >= 6 m between cars (slots >= 10 m, jitter +-20%)."""
    rng = boxes.rng
    ego = cfg.ego_speed
    same_speed = ego * rng.uniform(0.6, 1.5)
    oncoming_speed = -rng.uniform(6.0, 12.0)
    num_same = num_oncoming = 0
    for i in range(cfg.num_moving):
        if i == 0 and ego > 0:
            boxes.car(LANE_EGO, rng.uniform(14.0, 22.0), ego * rng.uniform(1.12, 1.25))
        elif i % 2 == 1:
            num_same += 1
        else:
            num_oncoming += 1
    start_same = (z_end * (1 - same_speed / ego) if ego > 0 else 0.0) - 10.0
    slot = max((z_end + 140.0 - start_same) / max(num_same, 1), 10.0)
    for k in range(num_same):
        boxes.car(LANE_SAME, start_same + slot * (k + 0.5 + rng.uniform(-0.2, 0.2)), same_speed)
    reach = z_end + 150.0 + abs(oncoming_speed) * duration
    slot = max((reach - 15.0) / max(num_oncoming, 1), 10.0)
    for k in range(num_oncoming):
        boxes.car(LANE_ONCOMING, 15.0 + slot * (k + 0.5 + rng.uniform(-0.2, 0.2)), oncoming_speed)
