"""The KITTI raw writer: calibration files, drives with image_02/03, velodyne_points and oxts, plus truth.

Calibration follows the real 2011_09_26 files (rotations re-orthonormalised, intrinsics scaled to the rendered
size with pipeline.intrinsics.resize_K). The rendered cameras are the *rectified* ones: image_02 is seen through
P_rect_02 = K [I | (0.06 fx, 0, 0)] and image_03 through P_rect_03 = K [I | (-0.48 fx, 0, 0)] in rectified cam0
coordinates, a 0.54 m stereo baseline; velodyne points map to image_02 pixels by P_rect_02 @ R_rect_00 @
Tr_velo_to_cam exactly as monodepth2's generate_depth_map computes it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys

import numpy as np

from pipeline.codecs import npz_bytes, png_bytes
from pipeline.intrinsics import resize_K
from pipeline.synth import faults as faults_mod
from pipeline.synth.config import KittiSynthConfig
from pipeline.synth.io import TreeWriter, run_jobs
from pipeline.synth.lidar import lidar_directions, scan_lidar
from pipeline.synth.render import SKY_DEPTH, Camera
from pipeline.synth.world import World, make_world

FULL_SIZE = (1242, 375)
FULL_K = np.array([[721.5377, 0.0, 609.5593], [0.0, 721.5377, 172.854], [0.0, 0.0, 1.0]])
# Camera centres along rectified cam0's x axis, as P_rect_0X[0, 3] = -fx * centre_x: cam1 0.54 m right of cam0,
# cam2 0.06 m left, cam3 0.48 m right (a 0.54 m colour baseline).
CAMERA_X = {"00": 0.0, "01": 0.54, "02": -0.06, "03": 0.48}
BASELINE = CAMERA_X["03"] - CAMERA_X["02"]

_R_RECT_00 = [9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01, -4.278459e-03,
              7.402527e-03, 4.351614e-03, 9.999631e-01]
_R_VELO_TO_CAM = [7.533745e-03, -9.999714e-01, -6.166020e-04, 1.480249e-02, 7.280733e-04, -9.998902e-01,
                  9.998621e-01, 7.523790e-03, 1.480755e-02]
_T_VELO_TO_CAM = [-4.069766e-03, -7.631618e-02, -2.717806e-01]
_R_IMU_TO_VELO = [9.999976e-01, 7.553071e-04, -2.035826e-03, -7.854027e-04, 9.998898e-01, -1.482298e-02,
                  2.024406e-03, 1.482454e-02, 9.998881e-01]
_T_IMU_TO_VELO = [-8.086759e-01, 3.195559e-01, -7.997231e-01]

OXTS_FIELDS = (
    "lat lon alt roll pitch yaw vn ve vf vl vu ax ay az af al au wx wy wz wf wl wu "
    "pos_accuracy vel_accuracy navstat numsats posmode velmode orimode"
).split()
OXTS_DATAFORMAT = """lat:   latitude of the oxts-unit (deg)
lon:   longitude of the oxts-unit (deg)
alt:   altitude of the oxts-unit (m)
roll:  roll angle (rad),    0 = level, positive = left side up,      range: -pi   .. +pi
pitch: pitch angle (rad),   0 = level, positive = front down,        range: -pi/2 .. +pi/2
yaw:   heading (rad),       0 = east,  positive = counter clockwise, range: -pi   .. +pi
vn:    velocity towards north (m/s)
ve:    velocity towards east (m/s)
vf:    forward velocity, i.e. parallel to earth-surface (m/s)
vl:    leftward velocity, i.e. parallel to earth-surface (m/s)
vu:    upward velocity, i.e. perpendicular to earth-surface (m/s)
ax:    acceleration in x, i.e. in direction of vehicle front (m/s^2)
ay:    acceleration in y, i.e. in direction of vehicle left (m/s^2)
az:    acceleration in z, i.e. in direction of vehicle top (m/s^2)
af:    forward acceleration (m/s^2)
al:    leftward acceleration (m/s^2)
au:    upward acceleration (m/s^2)
wx:    angular rate around x (rad/s)
wy:    angular rate around y (rad/s)
wz:    angular rate around z (rad/s)
wf:    angular rate around forward axis (rad/s)
wl:    angular rate around leftward axis (rad/s)
wu:    angular rate around upward axis (rad/s)
pos_accuracy:  velocity accuracy (north/east in m)
vel_accuracy:  velocity accuracy (north/east in m/s)
navstat:       navigation status (see navstat_to_string)
numsats:       number of satellites tracked by primary GPS receiver
posmode:       position mode of primary GPS receiver (see gps_mode_to_string)
velmode:       velocity mode of primary GPS receiver (see gps_mode_to_string)
orimode:       orientation mode of primary GPS receiver (see gps_mode_to_string)
"""
_EARTH_RADIUS = 6378137.0
_LAT0, _LON0, _ALT0 = 49.011213, 8.422885, 112.83  # Karlsruhe


def _orthonormal(values: list[float]) -> np.ndarray:
    u, _, vt = np.linalg.svd(np.array(values, dtype=np.float64).reshape(3, 3))
    return u @ vt


def _fmt(values) -> str:
    return " ".join(f"{float(v) + 0.0:.6e}" for v in np.ravel(values))


def _parse(text: str) -> dict[str, np.ndarray]:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        try:
            out[key] = np.array([float(x) for x in value.split()])
        except ValueError:
            pass
    return out


class KittiRig:
    """Calibration of the synthetic rig at one rendered size; every transform comes from the written text."""

    def __init__(self, size_wh: tuple[int, int]):
        self.size_wh = size_wh
        K = resize_K(FULL_K, FULL_SIZE, size_wh)
        raw_wh = (round(1392 * size_wh[0] / FULL_SIZE[0]), round(512 * size_wh[1] / FULL_SIZE[1]))
        lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
        R_rect_00 = _orthonormal(_R_RECT_00)
        for cam, cx in CAMERA_X.items():
            P = np.zeros((3, 4))
            P[:, :3] = K
            P[0, 3] = -K[0, 0] * cx
            lines += [
                f"S_{cam}: {_fmt(raw_wh)}",
                f"K_{cam}: {_fmt(K)}",
                f"D_{cam}: {_fmt(np.zeros(5))}",
                f"R_{cam}: {_fmt(np.eye(3))}",
                f"T_{cam}: {_fmt([-cx, 0.0, 0.0])}",
                f"S_rect_{cam}: {_fmt(size_wh)}",
                f"R_rect_{cam}: {_fmt(R_rect_00 if cam == '00' else np.eye(3))}",
                f"P_rect_{cam}: {_fmt(P)}",
            ]
        self.cam_to_cam = "\n".join(lines) + "\n"
        self.velo_to_cam = (
            "calib_time: 15-Mar-2012 11:37:16\n"
            f"R: {_fmt(_orthonormal(_R_VELO_TO_CAM))}\n"
            f"T: {_fmt(_T_VELO_TO_CAM)}\n"
            "delta_f: 0.000000e+00 0.000000e+00\n"
            "delta_c: 0.000000e+00 0.000000e+00\n"
        )
        self.imu_to_velo = (
            "calib_time: 25-May-2012 16:47:16\n"
            f"R: {_fmt(_orthonormal(_R_IMU_TO_VELO))}\n"
            f"T: {_fmt(_T_IMU_TO_VELO)}\n"
        )
        c2c = _parse(self.cam_to_cam)
        v2c = _parse(self.velo_to_cam)
        i2v = _parse(self.imu_to_velo)
        self.P_rect = {cam: c2c[f"P_rect_{cam}"].reshape(3, 4) for cam in CAMERA_X}
        self.K = self.P_rect["02"][:, :3].copy()
        self.R_rect_00 = np.eye(4)
        self.R_rect_00[:3, :3] = c2c["R_rect_00"].reshape(3, 3)
        self.T_cam0_velo = np.eye(4)
        self.T_cam0_velo[:3, :3] = v2c["R"].reshape(3, 3)
        self.T_cam0_velo[:3, 3] = v2c["T"]
        self.T_velo_imu = np.eye(4)
        self.T_velo_imu[:3, :3] = i2v["R"].reshape(3, 3)
        self.T_velo_imu[:3, 3] = i2v["T"]

    def T_rect0_cam(self, cam: str) -> np.ndarray:
        """Rectified cam0 from rectified camera `cam` ('02' or '03'): a pure x translation."""
        T = np.eye(4)
        T[0, 3] = -self.P_rect[cam][0, 3] / self.P_rect[cam][0, 0]
        return T

    @property
    def T_rect0_velo(self) -> np.ndarray:
        return self.R_rect_00 @ self.T_cam0_velo


def _timestamp(base: dt.datetime, seconds: float) -> str:
    ns = int(round(seconds * 1e9))
    t = base + dt.timedelta(microseconds=ns // 1000)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond:06d}{ns % 1000:03d}"


def _oxts_line(world: World, rig: KittiRig, t: float, heading0: float) -> str:
    """The oxts record of the IMU at time t: its pose written exactly (position and roll/pitch/yaw of the full IMU
    rotation, which the calibration tilts slightly), so pykitti's oxts -> camera pose chain returns the truth."""
    T_imu = world.rig_pose(t) @ rig.T_rect0_velo @ rig.T_velo_imu
    # world (x right, y down, z along the street at heading0) -> east, north, up
    ch, sh = np.cos(heading0), np.sin(heading0)
    M = np.array([[sh, 0.0, ch], [-ch, 0.0, sh], [0.0, -1.0, 0.0]])
    east, north, up = M @ T_imu[:3, 3]
    R = M @ T_imu[:3, :3]  # IMU axes (x forward, y left, z up) in east-north-up; pykitti: R = Rz(yaw) Ry(pitch) Rx(roll)
    pitch = -np.arcsin(np.clip(R[2, 0], -1.0, 1.0))
    roll = np.arctan2(R[2, 1], R[2, 2])
    yaw = np.arctan2(R[1, 0], R[0, 0])
    lat = _LAT0 + np.rad2deg(north / _EARTH_RADIUS)
    lon = _LON0 + np.rad2deg(east / (_EARTH_RADIUS * np.cos(np.deg2rad(_LAT0))))
    speed, yaw_rate_right = world.rig_velocity(t)
    speed_next, _ = world.rig_velocity(t + 0.05)
    speed_prev, _ = world.rig_velocity(max(t - 0.05, 0.0))
    accel = (speed_next - speed_prev) / (0.05 + min(t, 0.05))
    wu = -yaw_rate_right
    vn, ve = speed * np.sin(yaw), speed * np.cos(yaw)
    values = [lat, lon, _ALT0 + up, roll, pitch, yaw, vn, ve, speed, 0.0, 0.0,
              accel, speed * wu, 9.81, accel, speed * wu, 9.81, 0.0, 0.0, wu, 0.0, 0.0, wu, 0.35, 0.03]
    return " ".join(f"{v:.12g}" for v in values) + " 4 11 5 5 6"


def _write_drive(out_dir: str, cfg: KittiSynthConfig, i: int, n: int, on_frame=None) -> dict:
    """Render drive index `i` (n frames) of `cfg` under `out_dir`; returns its summary."""
    writer = TreeWriter(out_dir)
    rig = KittiRig(cfg.size_wh)
    date = cfg.date
    lidar_dirs = lidar_directions(cfg.lidar_beams, cfg.num_lidar_azimuths) if cfg.velodyne else None
    drive_number = cfg.first_drive + i
    name = cfg.drive_name(i)
    drive_seed = int(np.random.SeedSequence([cfg.seed, drive_number, 2011]).generate_state(1)[0])
    rng = np.random.default_rng(drive_seed)
    times = np.arange(n) / cfg.fps + rng.uniform(-5e-4, 5e-4, size=n) + 5e-4
    times[0] = 0.0
    world = make_world(cfg.world, duration=float(times[-1]), seed=drive_seed)
    heading0 = rng.uniform(-np.pi, np.pi)
    start_s = 300 * (drive_number % 100) + int(rng.integers(60))  # drives of a day start minutes apart
    base = dt.datetime.strptime(date, "%Y_%m_%d") + dt.timedelta(hours=13, seconds=start_s)
    cams = {"02": Camera(world, rig.K, cfg.size_wh)}
    if cfg.stereo:
        cams["03"] = cams["02"]
    root = f"{date}/{name}"
    _write_timestamps(writer, root, base, times, cameras=tuple(cams), velodyne=cfg.velodyne)
    num_moving_px = 0
    for k, t in enumerate(times):
        num_moving_px += _write_frame(writer, root, cfg, rig, world, cams, lidar_dirs, drive_number=drive_number,
                                      k=k, t=float(t), heading0=heading0)
        if on_frame is not None:
            on_frame()
    if cfg.truth:
        desc = world.describe()
        desc.update(
            dataset="kitti",
            drive=name,
            times_s=[round(float(t), 9) for t in times],
            pose_rect0_to_world=[world.rig_pose(float(t)).round(9).tolist() for t in times],
            T_rect0_velo=rig.T_rect0_velo.tolist(),
            sky_depth=SKY_DEPTH,
        )
        writer.write_text(f"{root}/rmdepth_truth/world.json", json.dumps(desc))
    return {"drive": name, "num_frames": n,
            "moving_pixel_fraction": float(num_moving_px / (n * np.prod(cfg.size_wh))),
            "num_files": writer.num_files, "num_bytes": writer.num_bytes}


def _write_timestamps(writer: TreeWriter, root: str, base: dt.datetime, times: np.ndarray, *,
                      cameras: tuple[str, ...], velodyne: bool) -> None:
    """The drive's timestamps files (cameras, velodyne start/end of sweep, oxts) and oxts/dataformat.txt."""
    stamps = [_timestamp(base, float(t)) for t in times]
    for cam in cameras:
        writer.write_text(f"{root}/image_{cam}/timestamps.txt", "\n".join(stamps) + "\n")
    if velodyne:
        writer.write_text(f"{root}/velodyne_points/timestamps.txt", "\n".join(stamps) + "\n")
        writer.write_text(f"{root}/velodyne_points/timestamps_start.txt",
                          "\n".join(_timestamp(base, float(t) - 0.0497) for t in times) + "\n")
        writer.write_text(f"{root}/velodyne_points/timestamps_end.txt",
                          "\n".join(_timestamp(base, float(t) + 0.0518) for t in times) + "\n")
    writer.write_text(f"{root}/oxts/timestamps.txt",
                      "\n".join(_timestamp(base, float(t) - 0.0042) for t in times) + "\n")
    writer.write_text(f"{root}/oxts/dataformat.txt", OXTS_DATAFORMAT)


def _write_frame(writer: TreeWriter, root: str, cfg: KittiSynthConfig, rig: KittiRig, world, cams: dict,
                 lidar_dirs: np.ndarray | None, *, drive_number: int, k: int, t: float, heading0: float) -> int:
    """Frame `k` (time `t`) of a drive: every camera's png (+ truth npz), the velodyne scan, the oxts record.
    Returns the number of moving pixels in camera 02."""
    num_moving_px = 0
    T_rect0 = world.rig_pose(t)
    for cam, camera in cams.items():
        pose = T_rect0 @ rig.T_rect0_cam(cam)
        frame = camera.render(pose, t)
        png = png_bytes(frame.rgb_HW3)
        if any(f.kind == "corrupt-png" and f.drive == drive_number and f.frame == k
               and f.camera == f"image_{cam}" for f in cfg.faults):
            png = faults_mod.garble_png(png)
        writer.write(f"{root}/image_{cam}/data/{k:010d}.png", png)
        if cam == "02":
            num_moving_px += int(frame.moving_HW.sum())
        if cfg.truth:
            writer.write(f"{root}/rmdepth_truth/image_{cam}/{k:010d}.npz",
                         npz_bytes(depth=frame.depth_HW, moving=frame.moving_HW,
                                   instance=frame.instance_HW.astype(np.int32), sky=frame.sky_HW,
                                   pose_cam_to_world=pose, K=rig.K, time_s=np.float64(t)))
    if lidar_dirs is not None:
        pts = scan_lidar(world, T_rect0 @ rig.T_rect0_velo, lidar_dirs, t)
        data = pts.astype("<f4").tobytes()
        if any(f.kind == "empty-velodyne" and f.drive == drive_number and f.frame == k for f in cfg.faults):
            data = b""
        writer.write(f"{root}/velodyne_points/data/{k:010d}.bin", data)
    writer.write_text(f"{root}/oxts/data/{k:010d}.txt", _oxts_line(world, rig, t, heading0) + "\n")
    return num_moving_px


def _frames_per_drive(cfg: KittiSynthConfig) -> list[int]:
    out = []
    for i in range(cfg.num_drives):
        n = cfg.num_frames
        for f in cfg.faults:
            short = f.drive if f.drive is not None else cfg.first_drive + cfg.num_drives - 1
            if f.kind == "short-drive" and short == cfg.first_drive + i:
                n = min(n, faults_mod.SHORT_DRIVE_FRAMES)
        out.append(n)
    return out


def write_kitti(out_dir: str, cfg: KittiSynthConfig, *, progress: bool | None = None, workers: int = 1) -> dict:
    """Render `cfg.num_drives` drives of `cfg.date` under `out_dir` in the KITTI raw layout; returns a summary.

    `workers` > 1 renders drives in that many processes (the output is the same bytes)."""
    from tqdm import tqdm

    writer = TreeWriter(out_dir)
    rig = KittiRig(cfg.size_wh)
    date = cfg.date
    writer.write_text(f"{date}/calib_cam_to_cam.txt", rig.cam_to_cam)
    writer.write_text(f"{date}/calib_velo_to_cam.txt", rig.velo_to_cam)
    writer.write_text(f"{date}/calib_imu_to_velo.txt", rig.imu_to_velo)
    frames_per_drive = _frames_per_drive(cfg)
    total = sum(frames_per_drive)
    show = progress if progress is not None else sys.stderr.isatty()
    bar = tqdm(total=total, desc=f"synth kitti {date}", unit="frame", disable=not show)
    jobs = [(out_dir, cfg, i, frames_per_drive[i]) for i in range(cfg.num_drives)]
    drives = run_jobs(_write_drive, jobs, workers=workers, on_frame=lambda: bar.update(1),
                      on_job=lambda r: bar.update(r["num_frames"]))
    bar.close()
    for d in drives:
        writer.num_files += d.pop("num_files")
        writer.num_bytes += d.pop("num_bytes")
    if any(f.kind == "missing-calib" for f in cfg.faults):
        writer.remove(f"{date}/calib_cam_to_cam.txt")
    if any(f.kind == "malformed-calib" for f in cfg.faults):
        text = "\n".join(
            line if not line.startswith("P_rect_02:") else " ".join(line.split()[:8])
            for line in rig.cam_to_cam.splitlines()
        )
        writer.write_text(f"{date}/calib_cam_to_cam.txt", text + "\n")
    return {
        "dataset": "kitti",
        "root": out_dir,
        "date": date,
        "size_wh": list(cfg.size_wh),
        "K": rig.K.tolist(),
        "baseline_m": BASELINE,
        "drives": drives,
        "num_frames": total,
        "num_files": writer.num_files,
        "num_bytes": writer.num_bytes,
        "faults": [f.kind for f in cfg.faults],
        "config": dataclasses.asdict(cfg),
    }
