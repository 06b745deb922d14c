"""KITTI calibration text files (`key: space-separated floats`) and oxts records.

Shape legend: N points.
"""

from __future__ import annotations

import numpy as np

from pipeline import storage


class CalibError(ValueError):
    """A calibration file that is missing, unreadable or lacks a required key."""


class Calib(dict[str, np.ndarray]):
    """`key -> numbers` of a calibration file; `unparsed` keeps the raw text of the values that are not finite
    numbers (calib_time, or a damaged entry), so that asking for such a key names the key and its value."""

    def __init__(self) -> None:
        super().__init__()
        self.unparsed: dict[str, str] = {}


def parse_calib_text(text: str, *, source: str) -> Calib:
    """Parse `key: floats` lines; values that are not finite numbers are kept aside in `.unparsed`."""
    out = Calib()
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        try:
            numbers = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            numbers = None  # calib_time and other non-numeric fields, or a damaged value
        if numbers is None or not np.isfinite(numbers).all():
            out.unparsed[key.strip()] = value.strip()
        else:
            out[key.strip()] = numbers
    if not out:
        raise CalibError(f"{source}: no `key: numbers` lines found")
    return out


def read_calib(url: str) -> Calib:
    if not storage.exists(url):
        raise CalibError(f"{url}: calibration file missing")
    try:
        text = storage.read_text(url)
    except (OSError, UnicodeDecodeError) as e:
        raise CalibError(f"{url}: cannot read ({e})") from e
    return parse_calib_text(text, source=url)


def require(calib: dict[str, np.ndarray], key: str, size: int, *, source: str) -> np.ndarray:
    if key not in calib:
        bad = getattr(calib, "unparsed", {}).get(key)
        if bad is not None:
            shown = bad if len(bad) <= 60 else bad[:57] + "..."
            raise CalibError(f"{source}: {key} is not {size} finite numbers: {shown!r}")
        raise CalibError(f"{source}: missing key {key}")
    value = calib[key]
    if value.size != size:
        raise CalibError(f"{source}: {key} has {value.size} values, expected {size}")
    return value


def cam_intrinsics(cam_to_cam: dict[str, np.ndarray], camera: str, *, source: str) -> tuple[np.ndarray, tuple[int, int]]:
    """(K_33 from P_rect_<camera>[:3, :3], rectified image size (W, H) from S_rect_<camera>)."""
    P_34 = require(cam_to_cam, f"P_rect_{camera}", 12, source=source).reshape(3, 4)
    S = require(cam_to_cam, f"S_rect_{camera}", 2, source=source)
    w, h = int(round(S[0])), int(round(S[1]))
    if w <= 0 or h <= 0:
        raise CalibError(f"{source}: S_rect_{camera} = {S.tolist()} is not a valid image size")
    K_33 = P_34[:, :3].copy()
    if K_33[0, 0] <= 0 or K_33[1, 1] <= 0:
        raise CalibError(f"{source}: P_rect_{camera} has non-positive focal length")
    return K_33, (w, h)


def velo_to_image(cam_to_cam: dict[str, np.ndarray], velo_to_cam: dict[str, np.ndarray], camera: str, *,
                  source: str) -> tuple[np.ndarray, np.ndarray]:
    """(P_velo2im_34 = P_rect_<camera> @ R_rect_00 @ velo2cam, velo2cam_44) exactly as monodepth2's kitti_utils."""
    R = require(velo_to_cam, "R", 9, source=source).reshape(3, 3)
    T = require(velo_to_cam, "T", 3, source=source).reshape(3, 1)
    velo2cam_44 = np.vstack((np.hstack((R, T)), np.array([[0, 0, 0, 1.0]])))
    R_cam2rect_44 = np.eye(4)
    R_cam2rect_44[:3, :3] = require(cam_to_cam, "R_rect_00", 9, source=source).reshape(3, 3)
    P_rect_34 = require(cam_to_cam, f"P_rect_{camera}", 12, source=source).reshape(3, 4)
    return P_rect_34 @ R_cam2rect_44 @ velo2cam_44, velo2cam_44


def oxts_forward_speed(url: str) -> float:
    """Forward velocity vf (m/s): field 9 of a KITTI oxts record (lat lon alt roll pitch yaw vn ve vf ...)."""
    values = storage.read_text(url).split()
    if len(values) < 9:
        raise ValueError(f"{url}: oxts record has {len(values)} fields, expected >= 9")
    return float(values[8])
