"""KITTI raw: drives + calibration -> Triplet / EvalFrame records, and ground-truth depth maps.

Layout: <root>/<date>/{calib_cam_to_cam.txt, calib_velo_to_cam.txt}, <root>/<date>/<date>_drive_NNNN_sync/
{image_02,image_03}/data/%010d.png, oxts/data/%010d.txt, velodyne_points/data/%010d.bin, and optionally
proj_depth/groundtruth/image_0X/%010d.png (the KITTI depth "annotated" download, eigen_benchmark GT).

Shape legend: N points, H height, W width.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image

from pipeline import storage
from pipeline.schema import EvalFrame, FrameRef, Triplet
from pipeline.shards.config import ShardConfig
from pipeline.sources import calib, oxts
from pipeline.sources.frames import list_numbered, note_holes
from pipeline.sources.records import Listing, SkippedInput
from pipeline.sources.splits import (
    SIDE_TO_CAMERA,
    SplitEntry,
    normalize_scene,
    read_scene_list,
    read_split_file,
)

_DATE = re.compile(r"^\d{4}_\d{2}_\d{2}$")
_DRIVE = re.compile(r"^\d{4}_\d{2}_\d{2}_drive_\d{4}_sync$")


_DATE_FILES = ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt")
"""Files of a KITTI raw date folder besides its drives (read by the sources, or standard and unused)."""


def _drives(root: str, listing: Listing | None = None) -> dict[str, list[str]]:
    """{date: [drive folder names]} sorted. With `listing`, every other folder or file in the date folders, and every
    folder at the root whose name looks like a date or a drive but is not one, is recorded there as skipped
    (stage "discover"): a drive named `2011_09_26_drive 0002_sync` is reported, not silently left out."""
    out = {}
    for date in storage.listdir(root):
        if not _DATE.match(date):
            if listing is not None and (date[:4].isdigit() or "drive" in date) and storage.isdir(storage.join(root, date)):
                listing.skipped.append(SkippedInput(
                    file=storage.join(root, date), stage="discover",
                    reason="folder name is not a KITTI date YYYY_MM_DD: not used"))
            continue
        drives = []
        for name in storage.listdir(storage.join(root, date)):
            if _DRIVE.match(name) and name.startswith(date):
                drives.append(name)
            elif listing is not None and name not in _DATE_FILES:
                listing.skipped.append(SkippedInput(
                    file=storage.join(root, date, name), stage="discover", sequence=date,
                    reason=f"not a drive folder of {date} ({date}_drive_NNNN_sync) nor a calibration file: not used"))
        if drives:
            out[date] = drives
    return out


def check_root(cfg: ShardConfig) -> None:
    root = cfg.input
    if not storage.isdir(root):
        raise FileNotFoundError(f"{root}: KITTI input folder not found")
    if not _drives(root):
        raise ValueError(
            f"{root} does not look like KITTI raw: expected <root>/<YYYY_MM_DD>/<YYYY_MM_DD>_drive_NNNN_sync/ folders "
            "(and <root>/<date>/calib_cam_to_cam.txt)"
        )


def _crop_rows(height: int, frac: float) -> int:
    return int(round(height * frac))


Intrinsics = tuple[np.ndarray, tuple[int, int]]


def _date_intrinsics(root: str, date: str, cameras: tuple[str, ...]) -> dict[str, Intrinsics | calib.CalibError]:
    """(K_33, (W, H)) of each camera of a date, or the CalibError that makes it unusable: one damaged camera entry
    does not cost the other camera its frames. A missing or unreadable file is an error for every camera."""
    url = storage.join(root, date, "calib_cam_to_cam.txt")
    try:
        cam_to_cam = calib.read_calib(url)
    except calib.CalibError as e:
        return dict.fromkeys(cameras, e)
    out: dict[str, Intrinsics | calib.CalibError] = {}
    for cam in cameras:
        try:
            out[cam] = calib.cam_intrinsics(cam_to_cam, cam, source=url)
        except calib.CalibError as e:
            out[cam] = e
    return out


def _K_tuple(K_33: np.ndarray):
    return tuple(tuple(float(v) for v in row) for row in K_33)


def _split_targets(cfg: ShardConfig) -> dict[tuple[str, str], list[SplitEntry]] | None:
    if not cfg.split_file:
        return None
    by_seq: dict[tuple[str, str], list[SplitEntry]] = {}
    for e in read_split_file(cfg.split_file):
        cams = (SIDE_TO_CAMERA[e.side],) if e.side else cfg.cameras
        for cam in cams:
            if cam in cfg.cameras:
                by_seq.setdefault((e.folder, cam), []).append(e)
    return by_seq


def list_triplets(cfg: ShardConfig) -> Listing:
    root = cfg.input
    listing = Listing()
    split = _split_targets(cfg)
    excluded = read_scene_list(cfg.exclude_scenes_file) if cfg.exclude_scenes_file else frozenset()
    drives = _drives(root, None if split is not None else listing)  # a split file picks what it uses
    seen = set()
    for date, names in drives.items():
        intr = _date_intrinsics(root, date, cfg.cameras)
        imu = _imu_to_cameras(root, date, cfg.cameras)
        for drive in names:
            seq = f"{date}/{drive}"
            if normalize_scene(drive) in excluded:
                listing.count("excluded_drives")
                continue
            for cam in cfg.cameras:
                cam_intr = intr[cam]
                if isinstance(cam_intr, calib.CalibError):
                    listing.skipped.append(SkippedInput(file=storage.join(root, date, "calib_cam_to_cam.txt"),
                                                        reason=f"camera {cam}: {cam_intr}", stage="calib", sequence=seq))
                    continue
                seen.add((seq, cam))
                _drive_triplets(cfg, listing, seq=seq, cam=cam, intr=cam_intr, split=split, T_cam_imu=imu.get(cam))
    if split is not None:
        for (seq, cam), entries in split.items():
            if (seq, cam) not in seen and normalize_scene(seq) not in excluded:
                for entry in entries:
                    listing.skipped.append(SkippedInput(file=f"{cfg.split_file}:{entry.line}", stage="split", sequence=seq,
                                                        reason=f"drive {seq} (camera {cam}) not found in the input or its calibration failed"))
    return listing


def _imu_to_cameras(root: str, date: str, cameras: tuple[str, ...]) -> dict[str, np.ndarray]:
    """IMU -> camera transforms of a date (empty when its IMU/velodyne calibration is missing or malformed: the
    triplets are still written, without the true camera motion)."""
    try:
        return {cam: oxts.T_cam_imu(storage.join(root, date), cam) for cam in cameras}
    except calib.CalibError:
        return {}


class _DrivePoses:
    """Camera-to-world poses of one drive's frames from its oxts records, read on demand (pykitti's Mercator scale
    from the drive's first record)."""

    def __init__(self, root: str, seq: str, T_cam_imu_44: np.ndarray | None):
        self.T_cam_imu = T_cam_imu_44
        self.records = list_numbered(storage.join(root, seq, "oxts", "data"), (".txt",)) if T_cam_imu_44 is not None else {}
        self.poses: dict[int, np.ndarray | None] = {}

    def pose(self, frame: int) -> np.ndarray | None:
        if frame not in self.poses:
            self.poses[frame] = None
            if frame in self.records and self.T_cam_imu is not None:
                first = self.records[min(self.records)]
                try:
                    self.poses[frame] = oxts.camera_poses([self.records[frame]], self.T_cam_imu, first_url=first)[0]
                except (ValueError, OSError):
                    self.poses[frame] = None
        return self.poses[frame]

    def motion(self, frames: tuple[int, int, int]) -> tuple[float, ...] | None:
        """Triplet.T_target_to_frames of (prev, tgt, next), or None if an oxts record is missing or unreadable."""
        poses = [p for p in (self.pose(f) for f in frames) if p is not None]
        if len(poses) != len(frames):
            return None
        mats = [oxts.relative_motion(poses[1], p) for p in poses]
        return tuple(float(v) for m in mats for v in m.reshape(-1))


def _drive_triplets(cfg: ShardConfig, listing: Listing, *, seq: str, cam: str, intr, split,
                    T_cam_imu: np.ndarray | None = None) -> None:
    root, g = cfg.input, cfg.frame_gap
    folder = storage.join(root, seq, f"image_{cam}", "data")
    frames = list_numbered(folder)
    if len(frames) < 2 * g + 1:
        listing.skipped.append(SkippedInput(file=folder, stage="enumerate", sequence=seq,
                                            reason=f"{len(frames)} frames; a triplet needs 3 frames {g} apart"))
        return
    note_holes(frames, folder=folder, sequence=seq, listing=listing)
    K_33, (w, h) = intr
    crop = _crop_rows(h, cfg.crop_bottom_frac)
    if split is None:
        targets = [(t, None) for t in sorted(frames)]
    else:
        targets = [(e.frame, e) for e in split.get((seq, cam), [])]
    oxts_records = list_numbered(storage.join(root, seq, "oxts", "data"), (".txt",)) if cfg.min_speed > 0 else {}
    poses = _DrivePoses(root, seq, T_cam_imu)
    for t, entry in targets:
        if not all(i in frames for i in (t - g, t, t + g)):
            if entry is not None:
                listing.skipped.append(SkippedInput(file=f"{cfg.split_file}:{entry.line}", stage="split", sequence=seq,
                                                    reason=f"target {t} camera {cam}: frame {t} or a neighbour {g} away is missing"))
            continue
        if cfg.min_speed > 0:
            if t not in oxts_records:
                listing.skipped.append(SkippedInput(file=storage.join(root, seq, "oxts", "data", f"{t:010d}.txt"),
                                                    stage="oxts", sequence=seq, reason="oxts record missing (needed by min_speed)"))
                continue
            try:
                vf = calib.oxts_forward_speed(oxts_records[t])
            except (ValueError, OSError) as e:
                listing.skipped.append(SkippedInput(file=oxts_records[t], stage="oxts", sequence=seq, reason=str(e)))
                continue
            if vf < cfg.min_speed:
                listing.count("static_targets")
                continue
        listing.records.append(Triplet(
            dataset="kitti", split=cfg.split, sequence=seq, camera=cam,
            frames=(FrameRef(path=frames[t - g], index=t - g), FrameRef(path=frames[t], index=t),
                    FrameRef(path=frames[t + g], index=t + g)),
            K_33=_K_tuple(K_33), size_wh=(w, h - crop), crop_bottom=crop,
            T_target_to_frames=poses.motion((t - g, t, t + g)),
        ))


def list_eval_frames(cfg: ShardConfig) -> Listing:
    """Test frames in split-file order (or every frame of every drive and camera when there is no split file)."""
    root = cfg.input
    listing = Listing()
    drives = _drives(root, None if cfg.split_file else listing)
    excluded = read_scene_list(cfg.exclude_scenes_file) if cfg.exclude_scenes_file else frozenset()
    if cfg.split_file:
        wanted = []
        for e in read_split_file(cfg.split_file):
            cam = SIDE_TO_CAMERA[e.side] if e.side else cfg.cameras[0]
            wanted.append((e.folder, cam, e.frame, f"{cfg.split_file}:{e.line}"))
    else:
        wanted = []
        for date, names in drives.items():
            for drive in names:
                if normalize_scene(drive) in excluded:
                    listing.count("excluded_drives")
                    continue
                for cam in cfg.cameras:
                    for t in sorted(list_numbered(storage.join(root, date, drive, f"image_{cam}", "data"))):
                        wanted.append((f"{date}/{drive}", cam, t, ""))
    intr_cache: dict[str, dict[str, Intrinsics | calib.CalibError]] = {}
    frame_cache: dict[tuple[str, str], tuple[dict[int, str], dict[int, str]]] = {}
    for seq, cam, t, where in wanted:
        date = seq.split("/")[0]
        if date not in intr_cache:
            intr_cache[date] = _date_intrinsics(root, date, ("02", "03"))
        cam_intr = intr_cache[date][cam]
        if isinstance(cam_intr, calib.CalibError):
            listing.skipped.append(SkippedInput(file=storage.join(root, date, "calib_cam_to_cam.txt"),
                                                reason=f"camera {cam}: {cam_intr}", stage="calib", sequence=seq,
                                                key=where))
            continue
        if (seq, cam) not in frame_cache:
            images = list_numbered(storage.join(root, seq, f"image_{cam}", "data"))
            if cfg.gt_source == "velodyne":
                gts = list_numbered(storage.join(root, seq, "velodyne_points", "data"), (".bin",))
            else:
                gts = list_numbered(storage.join(root, seq, "proj_depth", "groundtruth", f"image_{cam}"), (".png",))
            frame_cache[(seq, cam)] = (images, gts)
        images, gts = frame_cache[(seq, cam)]
        if t not in images:
            listing.skipped.append(SkippedInput(file=storage.join(root, seq, f"image_{cam}", "data", f"{t:010d}.png"),
                                                reason="image missing", stage="enumerate", sequence=seq, key=where))
            continue
        if t not in gts:
            gt_dir = "velodyne_points/data" if cfg.gt_source == "velodyne" else f"proj_depth/groundtruth/image_{cam}"
            listing.skipped.append(SkippedInput(file=storage.join(root, seq, gt_dir, f"{t:010d}"), stage="gt",
                                                sequence=seq, key=where, reason=f"{cfg.gt_source} ground truth missing"))
            continue
        K_33, (w, h) = cam_intr
        crop = _crop_rows(h, cfg.crop_bottom_frac)
        listing.records.append(EvalFrame(
            dataset="kitti", split=cfg.split, sequence=seq, camera=cam, frame=FrameRef(path=images[t], index=t),
            K_33=_K_tuple(K_33), size_wh=(w, h - crop), crop_bottom=crop, gt_source=cfg.gt_source,
            extra={"gt_path": gts[t], "calib_dir": storage.join(root, date), "vel_depth": cfg.vel_depth},
        ))
    return listing


def read_velodyne(url: str) -> np.ndarray:
    """float32 N x 4 (x forward, y left, z up, reflectance); a clear error for empty or truncated files."""
    data = storage.read_bytes(url)
    if len(data) == 0 or len(data) % 16:
        raise ValueError(f"{url}: velodyne file has {len(data)} bytes, expected a non-zero multiple of 16 (N x 4 float32)")
    return np.frombuffer(data, dtype=np.float32).reshape(-1, 4)


def velodyne_depth_map(points_N4: np.ndarray, P_velo2im_34: np.ndarray, size_wh: tuple[int, int], *,
                       vel_depth: bool) -> np.ndarray:
    """monodepth2 `kitti_utils.generate_depth_map`, vectorised, same output (float32 H x W, 0 = no point).

    Keeps points with x >= 0, projects, rounds u, v and subtracts 1 ("to match KITTI matlab"), keeps points inside
    the image, and for duplicates keeps the minimum depth. The duplicate groups use monodepth2's own linear index
    `row * (W - 1) + col - 1` (which also pairs (r, W-1) with (r+1, 0)), so the result matches its gt_depths.npz.
    """
    w, h = size_wh
    velo = points_N4[points_N4[:, 0] >= 0].astype(np.float64)
    velo[:, 3] = 1.0
    pts = velo @ P_velo2im_34.T
    pts[:, :2] = pts[:, :2] / pts[:, 2:3]
    if vel_depth:
        pts[:, 2] = velo[:, 0]
    pts[:, 0] = np.round(pts[:, 0]) - 1
    pts[:, 1] = np.round(pts[:, 1]) - 1
    ok = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] < w) & (pts[:, 1] < h)
    pts = pts[ok]
    rows, cols, z = pts[:, 1].astype(np.int64), pts[:, 0].astype(np.int64), pts[:, 2]
    depth = np.zeros((h, w))
    depth[rows, cols] = z  # last write wins, as in the reference
    inds = rows * (w - 1) + cols - 1
    order = np.argsort(inds, kind="stable")
    sorted_inds = inds[order]
    starts = np.flatnonzero(np.r_[True, sorted_inds[1:] != sorted_inds[:-1]])
    counts = np.diff(np.r_[starts, len(sorted_inds)])
    if len(starts):
        mins = np.minimum.reduceat(z[order], starts)
        first = order[starts]
        dup = counts > 1
        depth[rows[first[dup]], cols[first[dup]]] = mins[dup]
    depth[depth < 0] = 0
    return depth.astype(np.float32)


def load_gt(frame: EvalFrame) -> np.ndarray:
    """Ground-truth depth (float32 H x W metres, 0 = invalid) at the GT's own resolution, bottom crop applied."""
    path = frame.extra["gt_path"]
    if frame.gt_source == "velodyne":
        calib_dir = frame.extra["calib_dir"]
        c2c_url = storage.join(calib_dir, "calib_cam_to_cam.txt")
        v2c_url = storage.join(calib_dir, "calib_velo_to_cam.txt")
        cam_to_cam = calib.read_calib(c2c_url)
        velo_to_cam = calib.read_calib(v2c_url)
        P_velo2im_34, _ = calib.velo_to_image(cam_to_cam, velo_to_cam, frame.camera, source=f"{c2c_url} / {v2c_url}")
        _, size_wh = calib.cam_intrinsics(cam_to_cam, frame.camera, source=c2c_url)
        depth = velodyne_depth_map(read_velodyne(path), P_velo2im_34, size_wh, vel_depth=frame.extra["vel_depth"])
    else:
        try:
            with Image.open(io.BytesIO(storage.read_bytes(path))) as im:
                depth = np.asarray(im).astype(np.float32) / 256.0
        except OSError as e:
            raise ValueError(f"{path}: cannot decode ground-truth png ({e})") from e
        if depth.ndim != 2:
            raise ValueError(f"{path}: ground-truth png must be single-channel uint16, got shape {depth.shape}")
    if frame.crop_bottom:
        depth = depth[: depth.shape[0] - frame.crop_bottom]
    return np.ascontiguousarray(depth, dtype=np.float32)
