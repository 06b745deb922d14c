"""KITTI raw oxts (GPS/IMU) records -> camera poses, exactly as pykitti computes them.

Shape legend: N frames.

pykitti (`utils.load_oxts_packets_and_poses`, `raw._load_calib`): each packet gives the IMU pose in a local
Mercator frame, T_w_imu = [R(yaw, pitch, roll) | t - t_0] with t = (scale * lon * pi * r / 180,
scale * r * ln(tan((90 + lat) * pi / 360)), alt), r = 6378137 m, scale = cos(lat_0) of the drive's FIRST packet and
t_0 the first packet's position; R = Rz(yaw) Ry(pitch) Rx(roll). The camera's pose is T_w_cam = T_w_imu @
inv(T_cam_imu) with T_cam_imu = T_camN_rect0 @ R_rect_00 @ T_velo_to_cam @ T_imu_to_velo (rectified camera N frame;
T_camN_rect0 is the pure x translation P_rect_0N[0, 3] / P_rect_0N[0, 0]).
"""

from __future__ import annotations

import numpy as np

from pipeline import storage
from pipeline.sources import calib

EARTH_RADIUS = 6378137.0
NUM_FIELDS = 30


def parse_oxts(text: str, *, source: str) -> np.ndarray:
    """One oxts record (30 numbers) -> float64 (30,); a clear error for short, non-numeric or non-finite records."""
    parts = text.split()
    if len(parts) < 6:
        raise ValueError(f"{source}: oxts record has {len(parts)} fields, expected {NUM_FIELDS}")
    try:
        values = np.array([float(v) for v in parts], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{source}: oxts record is not numeric ({e})") from e
    if not np.all(np.isfinite(values[:6])):
        raise ValueError(f"{source}: oxts position/orientation is not finite: {values[:6].tolist()}")
    return values


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def mercator_position(packet: np.ndarray, *, lat0: float) -> np.ndarray:
    """pykitti's position of a packet (metres, Mercator with the scale cos(lat0))."""
    scale = np.cos(np.deg2rad(lat0))
    lat, lon, alt = packet[:3]
    return np.array([
        scale * lon * np.pi * EARTH_RADIUS / 180.0,
        scale * EARTH_RADIUS * np.log(np.tan((90.0 + lat) * np.pi / 360.0)),
        alt,
    ])


def imu_poses(packets_N: list[np.ndarray], *, lat0: float, origin_3: np.ndarray | None = None) -> np.ndarray:
    """IMU-to-world poses T_w_imu_N44 of packets (pykitti); the origin is `origin_3` (pykitti: the position of the
    drive's first packet), by default the first packet given."""
    out = []
    for p in packets_N:
        t = mercator_position(p, lat0=lat0)
        if origin_3 is None:
            origin_3 = t
        T = np.eye(4)
        T[:3, :3] = _rotation(*p[3:6])
        T[:3, 3] = t - origin_3
        out.append(T)
    return np.stack(out) if out else np.zeros((0, 4, 4))


def T_cam_imu(calib_dir: str, camera: str) -> np.ndarray:
    """IMU -> rectified camera `camera` ('02', '03') rigid transform from a date's calibration files (pykitti)."""
    c2c_url = storage.join(calib_dir, "calib_cam_to_cam.txt")
    v2c_url = storage.join(calib_dir, "calib_velo_to_cam.txt")
    i2v_url = storage.join(calib_dir, "calib_imu_to_velo.txt")
    cam_to_cam = calib.read_calib(c2c_url)
    velo_to_cam = calib.read_calib(v2c_url)
    imu_to_velo = calib.read_calib(i2v_url)
    _, T_cam0_velo = calib.velo_to_image(cam_to_cam, velo_to_cam, camera, source=f"{c2c_url} / {v2c_url}")
    R_rect = np.eye(4)
    R_rect[:3, :3] = calib.require(cam_to_cam, "R_rect_00", 9, source=c2c_url).reshape(3, 3)
    P = calib.require(cam_to_cam, f"P_rect_{camera}", 12, source=c2c_url).reshape(3, 4)
    T_cam_rect0 = np.eye(4)
    T_cam_rect0[0, 3] = P[0, 3] / P[0, 0]
    T_velo_imu = np.eye(4)
    T_velo_imu[:3, :3] = calib.require(imu_to_velo, "R", 9, source=i2v_url).reshape(3, 3)
    T_velo_imu[:3, 3] = calib.require(imu_to_velo, "T", 3, source=i2v_url)
    return T_cam_rect0 @ R_rect @ T_cam0_velo @ T_velo_imu


def camera_poses(oxts_urls: list[str], T_cam_imu_44: np.ndarray, *, first_url: str = "") -> np.ndarray:
    """Camera-to-world poses (N, 4, 4) of the frames whose oxts records are `oxts_urls` (in frame order), in the
    frame of the drive's first record `first_url` (pykitti: its latitude sets the Mercator scale, its position the
    origin); default: the first URL given."""
    packets = [parse_oxts(storage.read_text(u), source=u) for u in oxts_urls]
    if not packets:
        return np.zeros((0, 4, 4))
    first = parse_oxts(storage.read_text(first_url), source=first_url) if first_url else packets[0]
    lat0 = float(first[0])
    T_w_imu = imu_poses(packets, lat0=lat0, origin_3=mercator_position(first, lat0=lat0))
    return T_w_imu @ np.linalg.inv(T_cam_imu_44)


def relative_motion(pose_a_44: np.ndarray, pose_b_44: np.ndarray) -> np.ndarray:
    """T_a->b: maps points of camera a's frame into camera b's frame, from camera-to-world poses."""
    return np.linalg.inv(pose_b_44) @ pose_a_44
