"""The synthetic Cityscapes tree: real names and JSON keys, disparity that decodes to the true depth, the hood."""

from __future__ import annotations

import json
import re

import numpy as np
from PIL import Image

from pipeline.synth import load_truth, truth_path
from tests.synth.helpers import bilinear, read_rgb, warp_coords

NAME = re.compile(r"^frankfurt_000000_(\d{6})_leftImg8bit\.png$")


def test_layout_and_names(cityscapes_tree):
    root, cfg, summary = cityscapes_tree
    seq_dir = root / "leftImg8bit_sequence" / "val" / "frankfurt"
    names = sorted(p.name for p in seq_dir.iterdir())
    assert len(names) == cfg.num_frames
    numbers = [int(NAME.match(n).group(1)) for n in names]
    assert numbers == list(range(numbers[0], numbers[0] + cfg.num_frames))  # contiguous within the snippet
    annotated = f"frankfurt_000000_{numbers[19]:06d}"
    assert summary["snippets"][0]["annotated"] == annotated
    assert sorted(p.name for p in (root / "leftImg8bit" / "val" / "frankfurt").iterdir()) == [
        f"{annotated}_leftImg8bit.png"
    ]
    assert sorted(p.name for p in (root / "camera" / "val" / "frankfurt").iterdir()) == [f"{annotated}_camera.json"]
    assert sorted(p.name for p in (root / "disparity" / "val" / "frankfurt").iterdir()) == [
        f"{annotated}_disparity.png"
    ]
    a = (root / "leftImg8bit" / "val" / "frankfurt" / f"{annotated}_leftImg8bit.png").read_bytes()
    b = (seq_dir / f"{annotated}_leftImg8bit.png").read_bytes()
    assert a == b
    img = Image.open(seq_dir / names[0])
    assert img.mode == "RGB" and img.size == cfg.size_wh
    top = {p.name for p in root.iterdir()}
    assert top == {"leftImg8bit_sequence", "leftImg8bit", "camera", "disparity", "rmdepth_truth"}


def test_camera_json_and_disparity_decode_to_true_depth(cityscapes_tree):
    root, cfg, summary = cityscapes_tree
    annotated = summary["snippets"][0]["annotated"]
    cam = json.loads((root / "camera" / "val" / "frankfurt" / f"{annotated}_camera.json").read_text())
    assert set(cam) == {"extrinsic", "intrinsic"}
    assert set(cam["extrinsic"]) == {"baseline", "pitch", "roll", "x", "y", "yaw", "z"}
    assert set(cam["intrinsic"]) == {"fx", "fy", "u0", "v0"}
    disp_png = Image.open(root / "disparity" / "val" / "frankfurt" / f"{annotated}_disparity.png")
    p = np.asarray(disp_png).astype(np.float64)
    assert p.shape == (cfg.size_wh[1], cfg.size_wh[0]) and p.max() > 255  # 16-bit values
    truth = load_truth(truth_path(str(root / "leftImg8bit" / "val" / "frankfurt" / f"{annotated}_leftImg8bit.png")))
    np.testing.assert_allclose(truth.K_33[0, 0], cam["intrinsic"]["fx"])
    valid = p > 0
    assert not valid[truth.sky_HW].any() and not valid[truth.hood_HW].any()
    d = (p[valid] - 1.0) / 256.0
    depth = cam["extrinsic"]["baseline"] * cam["intrinsic"]["fx"] / d
    true = truth.depth_HW[valid]
    near = true < 80
    assert near.mean() > 0.7
    assert np.max(np.abs(depth[near] - true[near]) / true[near]) < 0.01


def test_hood_is_static_and_in_the_bottom_quarter(cityscapes_tree):
    root, cfg, _ = cityscapes_tree
    seq_dir = root / "leftImg8bit_sequence" / "val" / "frankfurt"
    paths = sorted(seq_dir.iterdir())
    truth0 = load_truth(truth_path(str(paths[0])))
    h = cfg.size_wh[1]
    hood = truth0.hood_HW
    assert hood.any() and not hood[: int(0.75 * h)].any()
    assert hood[-1].all()
    a, b = read_rgb(paths[0]), read_rgb(paths[10])
    assert np.array_equal(a[hood], b[hood])
    assert np.abs(a - b)[~hood].mean() > 0.02  # the world moves


def test_frame_gap_two_matches_kitti_motion_and_warps(cityscapes_tree):
    root, cfg, _ = cityscapes_tree
    paths = sorted((root / "leftImg8bit_sequence" / "val" / "frankfurt").iterdir())
    ts, tt = load_truth(truth_path(str(paths[10]))), load_truth(truth_path(str(paths[12])))
    T = np.linalg.inv(tt.pose_cam_to_world) @ ts.pose_cam_to_world
    assert 0.8 < np.linalg.norm(T[:3, 3]) < 1.6  # ~1 m per KITTI frame at 10 Hz == 2 frames at 17 Hz
    u, v, z = warp_coords(ts.depth_HW.astype(np.float64), ts.K_33, T)
    src, tgt = read_rgb(paths[10]), read_rgb(paths[12])
    warped, inside = bilinear(tgt, u, v)
    depth_t, _ = bilinear(tt.depth_HW[..., None], u, v)
    ok = inside & (np.abs(depth_t[..., 0] - z) < 0.02 * z) & ~ts.moving_HW & ~ts.sky_HW & ~ts.hood_HW
    ok &= ~bilinear(tt.hood_HW[..., None].astype(np.float32), u, v)[0][..., 0].astype(bool)
    err_warp = np.abs(warped - src).mean(-1)[ok].mean()
    err_none = np.abs(tgt - src).mean(-1)[ok].mean()
    assert err_warp < 0.3 * err_none
