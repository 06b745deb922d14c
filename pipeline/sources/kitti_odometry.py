"""KITTI odometry sequences and KITTI raw drives as ego-motion evaluation records: frames + true camera poses.

Shape legend: F frames.

Odometry layout (the `data_odometry_color`, `data_odometry_calib` and `data_odometry_poses` zips unpacked in place):
  <root>/sequences/NN/image_2/%06d.png   left colour camera (image_3: right), frames numbered 0..F-1
  <root>/sequences/NN/calib.txt          `P0:` .. `P3:` (3x4 rectified projections), `Tr:` (3x4 velodyne -> cam0)
  <root>/sequences/NN/times.txt          one timestamp (seconds) per frame
  <root>/poses/NN.txt                    ground truth (sequences 00..10): one line per frame, 12 numbers = the 3x4
                                         camera-to-world pose of the rectified left camera, row-major, in the frame
                                         of the sequence's first camera
As monodepth2's evaluate_pose.py does, these (cam0) poses are the ground truth of image_2's motion as they are (the
two rectified cameras differ by a 6 cm x translation only).

Raw layout (see pipeline.sources.kitti): <root>/<date>/<date>_drive_NNNN_sync/image_02/data/%010d.png with
oxts/data/%010d.txt and <root>/<date>/calib_*.txt; the ground truth is the camera 02 pose of every frame from its
oxts record exactly as pykitti computes it (pipeline.sources.oxts), re-expressed in the frame of the first camera.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipeline import storage
from pipeline.sources import calib, oxts
from pipeline.sources.frames import list_numbered

Layout = Literal["kitti-odometry", "kitti-raw"]
LAYOUTS: tuple[str, ...] = ("kitti-odometry", "kitti-raw")
_SEQUENCE = re.compile(r"^\d{2}$")
_DATE = re.compile(r"^\d{4}_\d{2}_\d{2}$")
_DRIVE = re.compile(r"^(?P<date>\d{4}_\d{2}_\d{2})_drive_\d{4}_sync$")


@dataclass(frozen=True, kw_only=True)
class PoseSequence:
    """One sequence (odometry) or drive (raw) for pose evaluation: its frames in time order and true poses."""

    name: str
    """Odometry sequence ("09") or raw drive ("2011_09_26/2011_09_26_drive_0001_sync")."""
    layout: Layout
    frame_urls: tuple[str, ...]
    """Image of frame i at index i (F frames, contiguous numbering)."""
    poses_F44: np.ndarray
    """float64 camera-to-world poses, frame 0 = identity (camera x right, y down, z forward)."""
    gt_source: str
    """Where the poses came from, for reports."""
    times_s: tuple[float, ...] | None = None
    """Seconds since the first frame, when the sequence has timestamps."""

    @property
    def num_frames(self) -> int:
        return len(self.frame_urls)


def parse_poses_text(text: str, *, source: str) -> np.ndarray:
    """KITTI odometry poses text -> camera-to-world poses (F, 4, 4) float64, with one clear error per problem
    (wrong number of numbers on a line, non-numeric or non-finite values, a rotation that is not one)."""
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) != 12:
            raise ValueError(f"{source}: line {n} has {len(parts)} numbers, expected 12 (KITTI odometry poses: a 3x4 "
                             "camera-to-world matrix per line, row-major)")
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise ValueError(f"{source}: line {n} is not numeric: {line.strip()[:80]!r}") from None
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{source}: line {n} has NaN or infinite values")
        rows.append(values)
    if not rows:
        raise ValueError(f"{source}: no poses (empty file)")
    poses_F44 = np.zeros((len(rows), 4, 4))
    poses_F44[:, :3, :] = np.array(rows).reshape(-1, 3, 4)
    poses_F44[:, 3, 3] = 1.0
    R_F33 = poses_F44[:, :3, :3]
    off = np.abs(R_F33 @ np.swapaxes(R_F33, 1, 2) - np.eye(3)).max(axis=(1, 2))
    bad = np.flatnonzero(off > 1e-2)
    if len(bad):
        raise ValueError(f"{source}: line {bad[0] + 1} is not a rigid pose (its 3x3 rotation part is not orthonormal; "
                         f"{len(bad)} such lines)")
    return poses_F44


def read_poses(url: str) -> np.ndarray:
    """A KITTI odometry poses file (local or URL) -> (F, 4, 4) camera-to-world poses."""
    if not storage.exists(url):
        raise FileNotFoundError(f"{url}: poses file not found")
    try:
        text = storage.read_text(url)
    except UnicodeDecodeError:
        raise ValueError(f"{url}: not a text file (KITTI odometry poses: 12 numbers a line)") from None
    return parse_poses_text(text, source=url)


def format_poses(poses_F44: np.ndarray) -> str:
    """Camera-to-world poses -> KITTI odometry poses text (12 numbers a line)."""
    return "".join(" ".join(f"{v:.9e}" for v in P[:3].reshape(-1)) + "\n" for P in np.asarray(poses_F44))


def relative_to_first(poses_F44: np.ndarray) -> np.ndarray:
    """Poses re-expressed in the frame of the first one (frame 0 becomes the identity)."""
    out_F44 = np.linalg.inv(poses_F44[0])[None] @ poses_F44
    out_F44[0] = np.eye(4)  # exactly, not up to rounding
    return out_F44


def detect_layout(root: str) -> Layout:
    """`kitti-odometry` when <root>/sequences exists, `kitti-raw` when <root> has <date>/<date>_drive_* folders."""
    if storage.isdir(storage.join(root, "sequences")):
        return "kitti-odometry"
    if raw_drives(root):
        return "kitti-raw"
    if not storage.exists(root):
        raise FileNotFoundError(f"{root}: data folder not found")
    raise ValueError(f"{root}: neither KITTI odometry (<root>/sequences/NN/image_2) nor KITTI raw "
                     "(<root>/<date>/<date>_drive_NNNN_sync) layout")


def odometry_sequences(root: str) -> list[str]:
    """Sequence names (two digits) under <root>/sequences that have an image_2 folder."""
    base = storage.join(root, "sequences")
    return [s for s in storage.listdir(base) if _SEQUENCE.match(s) and storage.isdir(storage.join(base, s, "image_2"))]


def raw_drives(root: str) -> list[str]:
    """Raw drives under root as "<date>/<drive>", sorted."""
    out = []
    for date in storage.listdir(root):
        if _DATE.match(date):
            out += [f"{date}/{d}" for d in storage.listdir(storage.join(root, date))
                    if _DRIVE.match(d) and d.startswith(date)]
    return out


def normalize_raw_drive(name: str) -> str:
    """"2011_09_26_drive_0001_sync" or "2011_09_26/2011_09_26_drive_0001_sync" -> the latter."""
    drive = name.strip("/").rsplit("/", 1)[-1]
    m = _DRIVE.match(drive)
    if not m:
        raise ValueError(f"{name!r} is not a KITTI raw drive name (YYYY_MM_DD_drive_NNNN_sync)")
    return f"{m['date']}/{drive}"


def _contiguous(frames: dict[int, str], *, folder: str) -> tuple[str, ...]:
    if not frames:
        raise FileNotFoundError(f"{folder}: no frames")
    missing = sorted(set(range(max(frames) + 1)) - set(frames))
    if missing:
        raise ValueError(f"{folder}: frame {missing[0]} missing ({len(missing)} missing; frames must be numbered "
                         "0..F-1 without holes)")
    return tuple(frames[i] for i in range(len(frames)))


def _times(url: str, num_frames: int) -> tuple[float, ...] | None:
    if not storage.exists(url):
        return None
    try:
        times = [float(v) for v in storage.read_text(url).split()]
    except ValueError as e:
        raise ValueError(f"{url}: not numeric ({e})") from None
    if len(times) != num_frames:
        raise ValueError(f"{url} has {len(times)} timestamps but the sequence has {num_frames} frames")
    return tuple(t - times[0] for t in times)


def load_odometry_sequence(root: str, sequence: str) -> PoseSequence:
    """Frames of sequences/NN/image_2 and the poses of poses/NN.txt (counts must match)."""
    if not _SEQUENCE.match(sequence):
        raise ValueError(f"odometry sequence {sequence!r}: expected two digits, e.g. 09")
    seq_url = storage.join(root, "sequences", sequence)
    image_dir = storage.join(seq_url, "image_2")
    if not storage.isdir(image_dir):
        have = ", ".join(odometry_sequences(root)) or "none"
        raise FileNotFoundError(f"{image_dir}: sequence {sequence} not found (sequences with image_2: {have})")
    frames = _contiguous(list_numbered(image_dir), folder=image_dir)
    poses_url = storage.join(root, "poses", f"{sequence}.txt")
    if not storage.exists(poses_url):
        raise FileNotFoundError(f"{poses_url}: no ground-truth poses for sequence {sequence} (KITTI publishes them "
                                "for 00..10 only)")
    poses = read_poses(poses_url)
    if len(poses) != len(frames):
        raise ValueError(f"{poses_url} has {len(poses)} poses but {image_dir} has {len(frames)} frames")
    calib_url = storage.join(seq_url, "calib.txt")
    if storage.exists(calib_url):
        calib.require(calib.read_calib(calib_url), "P2", 12, source=calib_url)
    return PoseSequence(name=sequence, layout="kitti-odometry", frame_urls=frames, poses_F44=relative_to_first(poses),
                        gt_source=f"{poses_url} (rectified cam0 poses, as monodepth2)",
                        times_s=_times(storage.join(seq_url, "times.txt"), len(frames)))


def raw_camera_poses(root: str, drive: str, camera: str, frame_ids: list[int]) -> np.ndarray:
    """Camera-to-world poses (pykitti, in the frame of the drive's first oxts record) of a raw drive's frames."""
    drive = normalize_raw_drive(drive)
    date = drive.split("/", 1)[0]
    oxts_dir = storage.join(root, *drive.split("/"), "oxts", "data")
    records = list_numbered(oxts_dir, (".txt",))
    if not records:
        raise FileNotFoundError(f"{oxts_dir}: no oxts records (needed for the ground-truth poses)")
    missing = [i for i in frame_ids if i not in records]
    if missing:
        raise ValueError(f"{oxts_dir}: no oxts record for frame {missing[0]} ({len(missing)} frames without one)")
    T_cam_imu_44 = oxts.T_cam_imu(storage.join(root, date), camera)
    return oxts.camera_poses([records[i] for i in frame_ids], T_cam_imu_44, first_url=records[min(records)])


def load_raw_drive(root: str, drive: str) -> PoseSequence:
    """Frames of <drive>/image_02/data and their camera 02 poses from oxts (pykitti), relative to frame 0."""
    drive = normalize_raw_drive(drive)
    image_dir = storage.join(root, *drive.split("/"), "image_02", "data")
    if not storage.isdir(image_dir):
        have = ", ".join(raw_drives(root)) or "none"
        raise FileNotFoundError(f"{image_dir}: drive {drive} not found (drives: {have})")
    frames = _contiguous(list_numbered(image_dir), folder=image_dir)
    poses = raw_camera_poses(root, drive, "02", list(range(len(frames))))
    return PoseSequence(name=drive, layout="kitti-raw", frame_urls=frames, poses_F44=relative_to_first(poses),
                        gt_source="oxts + calib_*.txt (pykitti), camera 02")


def load_sequence(root: str, name: str, layout: Layout) -> PoseSequence:
    if layout == "kitti-odometry":
        return load_odometry_sequence(root, name)
    if layout == "kitti-raw":
        return load_raw_drive(root, name)
    raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
