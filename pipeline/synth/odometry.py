"""KITTI raw drives -> the KITTI odometry layout (`rmdepth synth kitti-odometry OUT --from RAW`).

KITTI's odometry sequences 00..10 are raw drives re-packaged: rectified images renumbered from 0, one calib.txt per
sequence and ground-truth poses of the rectified left camera (cam0) relative to the first frame. This converter does
the same for any raw tree (a synthetic one from `rmdepth synth kitti`, or real raw drives):

  <out>/sequences/NN/image_2/%06d.png, image_3/%06d.png   the drive's image_02 / image_03 PNGs, byte for byte
  <out>/sequences/NN/calib.txt    P0..P3 = P_rect_00..03 (3x4), Tr = R_rect_00 @ Tr_velo_to_cam (velodyne -> cam0)
  <out>/sequences/NN/times.txt    image_02 timestamps as seconds since the first frame (`%e`, like KITTI's)
  <out>/poses/NN.txt              cam0 camera-to-world poses relative to frame 0, 12 numbers a line, from the
                                  oxts records exactly as pykitti computes them (synthetic oxts reproduce the
                                  world's truth, rmdepth_truth/world.json pose_rect0_to_world)
  <out>/sequences/NN/rmdepth_source.json   which raw drive the sequence came from

Velodyne scans and the grey cameras (image_0, image_1) are not copied.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np

from pipeline import storage
from pipeline.sources import calib
from pipeline.sources.frames import list_numbered
from pipeline.sources.kitti_odometry import (
    format_poses,
    normalize_raw_drive,
    raw_camera_poses,
    raw_drives,
    relative_to_first,
)
from pipeline.synth.io import TreeWriter


def _seconds(stamp: str) -> float:
    """'2011-09-26 13:05:43.100676286' -> seconds since the epoch (nanoseconds kept as a fraction)."""
    whole, _, frac = stamp.strip().partition(".")
    t = dt.datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def odometry_calib_text(cam_to_cam: dict[str, np.ndarray], velo_to_cam: dict[str, np.ndarray], *, source: str) -> str:
    """calib.txt of an odometry sequence from a raw date's calibration."""
    lines = []
    for cam in ("00", "01", "02", "03"):
        P = calib.require(cam_to_cam, f"P_rect_{cam}", 12, source=source)
        lines.append(f"P{int(cam)}: " + " ".join(f"{v:.12e}" for v in P))
    _, velo2cam_44 = calib.velo_to_image(cam_to_cam, velo_to_cam, "00", source=source)
    R_rect_44 = np.eye(4)
    R_rect_44[:3, :3] = calib.require(cam_to_cam, "R_rect_00", 9, source=source).reshape(3, 3)
    Tr = (R_rect_44 @ velo2cam_44)[:3]
    lines.append("Tr: " + " ".join(f"{v:.12e}" for v in Tr.reshape(-1)))
    return "\n".join(lines) + "\n"


def convert_drive(raw_root: str, drive: str, out: str, sequence: str) -> dict:
    """Write one raw drive as odometry sequence `sequence` under `out`; returns its summary."""
    drive = normalize_raw_drive(drive)
    date = drive.split("/", 1)[0]
    drive_url = storage.join(raw_root, *drive.split("/"))
    writer = TreeWriter(out)
    images = {cam: list_numbered(storage.join(drive_url, f"image_0{cam}", "data")) for cam in ("2", "3")}
    frames = sorted(images["2"])
    if not frames:
        raise FileNotFoundError(f"{drive_url}/image_02/data: no frames")
    if frames != list(range(len(frames))):
        raise ValueError(f"{drive_url}/image_02/data: frames are not numbered 0..{len(frames) - 1} without holes")
    for cam, by_index in images.items():
        if cam == "3" and sorted(by_index) != frames:
            continue  # no (complete) right camera: image_2 only
        for i in frames:
            writer.write(f"sequences/{sequence}/image_{cam}/{i:06d}.png", storage.read_bytes(by_index[i]))
    c2c_url = storage.join(raw_root, date, "calib_cam_to_cam.txt")
    v2c_url = storage.join(raw_root, date, "calib_velo_to_cam.txt")
    writer.write_text(f"sequences/{sequence}/calib.txt",
                      odometry_calib_text(calib.read_calib(c2c_url), calib.read_calib(v2c_url), source=c2c_url))
    stamps_url = storage.join(drive_url, "image_02", "timestamps.txt")
    if storage.exists(stamps_url):
        stamps = [_seconds(s) for s in storage.read_text(stamps_url).splitlines() if s.strip()]
        if len(stamps) != len(frames):
            raise ValueError(f"{stamps_url} has {len(stamps)} timestamps but the drive has {len(frames)} frames")
        writer.write_text(f"sequences/{sequence}/times.txt", "".join(f"{t - stamps[0]:e}\n" for t in stamps))
    poses = relative_to_first(raw_camera_poses(raw_root, drive, "00", frames))
    writer.write_text(f"poses/{sequence}.txt", format_poses(poses))
    writer.write_text(f"sequences/{sequence}/rmdepth_source.json",
                      json.dumps({"raw_root": raw_root, "drive": drive, "num_frames": len(frames)}))
    return {"sequence": sequence, "drive": drive, "num_frames": len(frames),
            "cameras": [f"image_{c}" for c in ("2", "3") if sorted(images[c]) == frames],
            "path_length_m": float(np.sum(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)))}


def write_kitti_odometry(out: str, raw_root: str, *, drives: tuple[str, ...] = (), first_sequence: int = 9) -> dict:
    """Convert raw drives (default: all under raw_root, sorted) into odometry sequences numbered from
    `first_sequence` (default 9: the first drive becomes the standard test sequence 09)."""
    names = [normalize_raw_drive(d) for d in drives] or raw_drives(raw_root)
    if not names:
        raise FileNotFoundError(f"{raw_root}: no KITTI raw drives (<date>/<date>_drive_NNNN_sync)")
    if not 0 <= first_sequence <= 100 - len(names):
        raise ValueError(f"first sequence {first_sequence}: {len(names)} drives need two-digit numbers up to 99")
    seqs = [convert_drive(raw_root, d, out, f"{first_sequence + k:02d}") for k, d in enumerate(names)]
    return {"dataset": "kitti-odometry", "root": out, "from": raw_root, "sequences": seqs}
