"""Tiny hand-made KITTI-raw and Cityscapes trees in the real file formats (for unit tests of the sources)."""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

P_RECT_02 = [721.5377, 0, 609.5593, 44.85728, 0, 721.5377, 172.854, 0.2163791, 0, 0, 1, 0.002745884]
P_RECT_03 = [721.5377, 0, 609.5593, -339.5242, 0, 721.5377, 172.854, 2.199936, 0, 0, 1, 0.002729905]


def smooth_image(rng, size_wh) -> np.ndarray:
    """A smooth random RGB image (a coarse random grid upsampled bilinearly): JPEG keeps it within a few levels."""
    coarse = rng.integers(0, 255, size=(4, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize(tuple(size_wh), Image.Resampling.BILINEAR))


def _fmt(values) -> str:
    return " ".join(f"{v:.12e}" for v in values)


def write_kitti_calib(date_dir: str, *, size_wh=(62, 19), scale=0.05) -> None:
    """calib_cam_to_cam / calib_velo_to_cam for an image of size_wh (KITTI numbers scaled by `scale`)."""
    os.makedirs(date_dir, exist_ok=True)
    lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for cam, P in (("00", P_RECT_02), ("01", P_RECT_03), ("02", P_RECT_02), ("03", P_RECT_03)):
        P = np.array(P, dtype=np.float64).reshape(3, 4)
        P[:2] *= scale
        lines += [f"S_{cam}: 1.392000e+03 5.120000e+02", f"K_{cam}: {_fmt(np.eye(3).ravel())}",
                  f"D_{cam}: {_fmt([0] * 5)}", f"R_{cam}: {_fmt(np.eye(3).ravel())}", f"T_{cam}: {_fmt([0] * 3)}",
                  f"S_rect_{cam}: {_fmt(size_wh)}", f"R_rect_{cam}: {_fmt(np.eye(3).ravel())}",
                  f"P_rect_{cam}: {_fmt(P.ravel())}"]
    with open(os.path.join(date_dir, "calib_cam_to_cam.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # velodyne (x fwd, y left, z up) -> camera (x right, y down, z fwd)
    R = [0, -1, 0, 0, 0, -1, 1, 0, 0]
    with open(os.path.join(date_dir, "calib_velo_to_cam.txt"), "w") as f:
        f.write(f"calib_time: 15-Mar-2012 11:37:16\nR: {_fmt(R)}\nT: {_fmt([0.0, -0.08, -0.27])}\n"
                f"delta_f: 0 0\ndelta_c: 0 0\n")


def make_kitti(root: str, *, date="2011_09_26", drives=(1, 2), frames=5, size_wh=(62, 19), seed=0, speed=5.0) -> None:
    rng = np.random.default_rng(seed)
    write_kitti_calib(os.path.join(root, date), size_wh=size_wh)
    for d in drives:
        drive = os.path.join(root, date, f"{date}_drive_{d:04d}_sync")
        for cam in ("02", "03"):
            os.makedirs(os.path.join(drive, f"image_{cam}", "data"), exist_ok=True)
            for i in range(frames):
                Image.fromarray(smooth_image(rng, size_wh)).save(os.path.join(drive, f"image_{cam}", "data", f"{i:010d}.png"))
        os.makedirs(os.path.join(drive, "oxts", "data"), exist_ok=True)
        os.makedirs(os.path.join(drive, "velodyne_points", "data"), exist_ok=True)
        for i in range(frames):
            vf = speed if i % 2 == 0 else 0.0
            rec = [49.0, 8.4, 110.0, 0, 0, 0, 0, 0, vf, 0, 0] + [0.0] * 19
            with open(os.path.join(drive, "oxts", "data", f"{i:010d}.txt"), "w") as f:
                f.write(" ".join(str(v) for v in rec) + "\n")
            pts = np.stack([rng.uniform(2, 40, 500), rng.uniform(-10, 10, 500), rng.uniform(-1.5, 1, 500),
                            rng.uniform(0, 1, 500)], axis=1).astype(np.float32)
            pts.tofile(os.path.join(drive, "velodyne_points", "data", f"{i:010d}.bin"))


def make_cityscapes(root: str, *, split="train", city="aachen", seqs=(0, 1), frames=7, size_wh=(64, 32), seed=0):
    rng = np.random.default_rng(seed)
    for s in seqs:
        base = 100 * s
        for i in range(frames):
            d = os.path.join(root, "leftImg8bit_sequence", split, city)
            os.makedirs(d, exist_ok=True)
            Image.fromarray(smooth_image(rng, size_wh)).save(os.path.join(d, f"{city}_{s:06d}_{base + i:06d}_leftImg8bit.png"))
        ann = base + frames // 2
        d = os.path.join(root, "camera", split, city)
        os.makedirs(d, exist_ok=True)
        cam = {"extrinsic": {"baseline": 0.209313, "pitch": 0.038, "roll": 0, "x": 1.7, "y": 0.1, "yaw": 0, "z": 1.2},
               "intrinsic": {"fx": 70.7, "fy": 70.8, "u0": 34.3, "v0": 16.0}}
        with open(os.path.join(d, f"{city}_{s:06d}_{ann:06d}_camera.json"), "w") as f:
            json.dump(cam, f)
        d = os.path.join(root, "disparity", split, city)
        os.makedirs(d, exist_ok=True)
        disp = rng.integers(0, 3000, size=(size_wh[1], size_wh[0]), dtype=np.uint16)
        Image.fromarray(disp).save(os.path.join(d, f"{city}_{s:06d}_{ann:06d}_disparity.png"))
