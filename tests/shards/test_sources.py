"""Dataset sources on hand-made trees in the real formats: calibration, triplet rules, splits, filters, bad SRC."""

from __future__ import annotations

import os
import shutil
from collections import Counter

import numpy as np
import pytest

from pipeline.shards.config import ShardConfig
from pipeline.sources import SOURCES, cityscapes, kitti
from pipeline.sources.calib import parse_calib_text
from pipeline.sources.splits import parse_split_text
from tests.shards.handmade import P_RECT_02, make_kitti


def test_kitti_triplets_intrinsics_and_counts(kitti_tree):
    listing = kitti.list_triplets(ShardConfig(dataset="kitti", input=kitti_tree))
    assert not listing.skipped
    # 2 drives x 2 cameras x (5 frames - 2 edges)
    assert len(listing.records) == 12
    t = listing.records[0]
    P = np.array(P_RECT_02).reshape(3, 4)
    np.testing.assert_allclose(np.array(t.K_33), np.vstack([P[:2, :3] * 0.05, P[2:, :3]]), rtol=1e-9)
    assert t.size_wh == (62, 19) and t.crop_bottom == 0
    for r in listing.records:
        a, b, c = (f.index for f in r.frames)
        assert (b - a, c - b) == (1, 1)
        assert all(f"image_{r.camera}" in f.path and r.sequence.split("/")[1] in f.path for f in r.frames)
    left = kitti.list_triplets(ShardConfig(dataset="kitti", input=kitti_tree, cameras=("02",)))
    assert len(left.records) == 6 and {r.camera for r in left.records} == {"02"}
    gap2 = kitti.list_triplets(ShardConfig(dataset="kitti", input=kitti_tree, frame_gap=2))
    assert len(gap2.records) == 4


def test_kitti_folders_it_cannot_use_are_recorded(kitti_tree, tmp_path):
    """A drive folder with a non-standard name and stray files are reported (stage discover), never silently
    left out; the drives that are well named still give all their triplets."""
    root = str(tmp_path / "k")
    shutil.copytree(kitti_tree, root)
    date = os.path.join(root, "2011_09_26")
    os.rename(os.path.join(date, "2011_09_26_drive_0002_sync"), os.path.join(date, "2011_09_26_drive 0002_sync"))
    open(os.path.join(date, "notes.txt"), "w").write("x")
    os.makedirs(os.path.join(root, "2011_09_26_drive_0009_sync"))  # a drive one level too high
    for kind in ("train", "eval"):
        cfg = ShardConfig(dataset="kitti", input=root, kind=kind)
        listing = kitti.list_triplets(cfg) if kind == "train" else kitti.list_eval_frames(cfg)
        found = {os.path.relpath(s.file, root): s.reason for s in listing.skipped if s.stage == "discover"}
        assert set(found) == {"2011_09_26/2011_09_26_drive 0002_sync", "2011_09_26/notes.txt",
                              "2011_09_26_drive_0009_sync"}, found
        assert "not a drive folder" in found["2011_09_26/2011_09_26_drive 0002_sync"]
        assert {r.sequence for r in listing.records} == {"2011_09_26/2011_09_26_drive_0001_sync"}
    assert len(kitti.list_triplets(ShardConfig(dataset="kitti", input=root)).records) == 6


def test_kitti_split_file_static_and_excluded(kitti_tree, tmp_path):
    split = tmp_path / "train_files.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0001_sync 2 l\n"
                     "2011_09_26/2011_09_26_drive_0001_sync 0000000003 r\n"
                     "2011_09_26/2011_09_26_drive_0001_sync 4 l\n"  # last frame: no t+1
                     "2011_09_26/2011_09_26_drive_0009_sync 2 l\n")  # no such drive
    listing = kitti.list_triplets(ShardConfig(dataset="kitti", input=kitti_tree, split_file=str(split)))
    assert sorted((r.camera, r.frames[1].index) for r in listing.records) == [("02", 2), ("03", 3)]
    reasons = sorted((s.stage, s.file.rsplit(":", 1)[1]) for s in listing.skipped)
    assert reasons == [("split", "3"), ("split", "4")]
    # oxts vf is 5 on even frames, 0 on odd ones
    static = kitti.list_triplets(ShardConfig(dataset="kitti", input=kitti_tree, min_speed=1.0))
    assert {r.frames[1].index for r in static.records} == {2}
    assert static.filtered["static_targets"] == 8
    scenes = tmp_path / "test_scenes.txt"
    scenes.write_text("2011_09_26_drive_0002\n")
    ex = kitti.list_triplets(ShardConfig(dataset="kitti", input=kitti_tree, exclude_scenes_file=str(scenes)))
    assert len(ex.records) == 6 and all("drive_0001" in r.sequence for r in ex.records)


def test_kitti_bad_inputs_are_recorded(tmp_path):
    root = str(tmp_path / "k")
    make_kitti(root, drives=(1, 2, 3), frames=5)
    drive3 = os.path.join(root, "2011_09_26", "2011_09_26_drive_0003_sync")
    for cam in ("02", "03"):
        for i in (2, 3, 4):
            os.remove(os.path.join(drive3, f"image_{cam}", "data", f"{i:010d}.png"))
    os.remove(os.path.join(root, "2011_09_26", "2011_09_26_drive_0002_sync", "image_02", "data", "0000000002.png"))
    listing = kitti.list_triplets(ShardConfig(dataset="kitti", input=root))
    stages = Counter((s.stage, "drive_0003" in s.file) for s in listing.skipped)
    assert stages[("enumerate", True)] == 2  # drive 3 too short, both cameras
    assert any("frame 2 missing" in s.reason for s in listing.skipped)
    # drive 1: 6; drive 2: cam 03 3 + cam 02 0 (frame 2 gone kills targets 1, 2, 3)
    assert len(listing.records) == 9
    # broken calibration of camera 02: its drives are skipped with the file and the key named; camera 03 stays
    calib = os.path.join(root, "2011_09_26", "calib_cam_to_cam.txt")
    good_text = open(calib).read()
    open(calib, "w").write("\n".join(ln if not ln.startswith("P_rect_02") else "P_rect_02: 1 2 3"
                                     for ln in good_text.splitlines()))
    bad = kitti.list_triplets(ShardConfig(dataset="kitti", input=root))
    calib_skips = [s for s in bad.skipped if s.stage == "calib"]
    assert len(calib_skips) == 3 and all(s.file == calib and "camera 02" in s.reason and "P_rect_02 has 3 values"
                                         in s.reason for s in calib_skips)
    assert [r.camera for r in bad.records] == ["03"] * 6  # drive 1: 3, drive 2: 3 (camera 02's 6 + 0 are gone)
    # a value that is not numbers (e.g. NaNx) is reported as such, with the value, not as a missing key
    open(calib, "w").write("\n".join(ln if not ln.startswith("P_rect_02") else "P_rect_02: NaNx 1 2 3 4 5 6 7 8 9 10 11"
                                     for ln in good_text.splitlines()))
    nan = [s for s in kitti.list_triplets(ShardConfig(dataset="kitti", input=root)).skipped if s.stage == "calib"]
    assert nan and all("P_rect_02 is not 12 finite numbers: 'NaNx 1 2" in s.reason for s in nan)
    os.remove(calib)
    gone = kitti.list_triplets(ShardConfig(dataset="kitti", input=root))
    assert all("calibration file missing" in s.reason for s in gone.skipped) and len(gone.skipped) == 6  # drive x camera


def test_bad_src_fails_fast(tmp_path, kitti_tree, cs_tree):
    with pytest.raises(FileNotFoundError, match="not found"):
        kitti.check_root(ShardConfig(dataset="kitti", input=str(tmp_path / "nope")))
    with pytest.raises(ValueError, match="does not look like KITTI raw"):
        kitti.check_root(ShardConfig(dataset="kitti", input=cs_tree))
    with pytest.raises(ValueError, match="does not look like Cityscapes"):
        cityscapes.check_root(ShardConfig(dataset="cityscapes", input=kitti_tree))


def test_cityscapes_snippets_crop_and_intrinsics(cs_tree, tmp_path):
    cfg = ShardConfig(dataset="cityscapes", input=cs_tree)
    assert cfg.frame_gap == 2 and cfg.crop_bottom_frac == 0.25 and cfg.cameras == ("left",)
    listing = cityscapes.list_triplets(cfg)
    assert not listing.skipped
    assert len(listing.records) == 2 * (7 - 4)
    t = listing.records[0]
    assert t.crop_bottom == 8 and t.size_wh == (64, 24)
    assert t.K_33 == ((70.7, 0.0, 34.3), (0.0, 70.8, 16.0), (0.0, 0.0, 1.0))
    assert {r.sequence for r in listing.records} == {"aachen_000000", "aachen_000001"}
    for r in listing.records:
        a, b, c = (f.index for f in r.frames)
        assert b - a == 2 and c - b == 2 and a // 100 == c // 100
    # camera json missing for snippet 1 -> its triplets are skipped and recorded
    broken = str(tmp_path / "cs")
    shutil.copytree(cs_tree, broken)
    os.remove(os.path.join(broken, "camera", "train", "aachen", "aachen_000001_000103_camera.json"))
    with open(os.path.join(broken, "camera", "train", "aachen", "aachen_000000_000003_camera.json"), "w") as f:
        f.write("{not json")
    bad = cityscapes.list_triplets(ShardConfig(dataset="cityscapes", input=broken))
    assert not bad.records
    assert len(bad.skipped) == 2
    assert any(s.reason.startswith("no camera json") and s.sequence == "aachen_000001" for s in bad.skipped)
    assert any("malformed camera json" in s.reason and s.file.endswith("aachen_000000_000003_camera.json")
               for s in bad.skipped)


def test_cityscapes_eval_frames_and_disparity_depth(cs_tree):
    cfg = ShardConfig(dataset="cityscapes", input=cs_tree, kind="eval", split="train")
    listing = cityscapes.list_eval_frames(cfg)
    assert [(f.sequence, f.frame.index) for f in listing.records] == [("aachen_000000", 3), ("aachen_000001", 103)]
    gt = cityscapes.load_gt(listing.records[0])
    assert gt.shape == (24, 64) and gt.dtype == np.float32
    p = np.array([[0, 1, 257, 513]], dtype=np.uint16)
    np.testing.assert_allclose(cityscapes.disparity_to_depth(p, baseline=0.2, fx=100.0), [[0, 0, 20.0, 10.0]])


def _reference_generate_depth_map(points_N4, P, size_wh, vel_depth):
    """monodepth2 kitti_utils.generate_depth_map, loop version (the reference the vectorised code must match)."""
    w, h = size_wh
    velo = points_N4[points_N4[:, 0] >= 0, :].astype(np.float64)
    velo[:, 3] = 1
    pts = np.dot(P, velo.T).T
    pts[:, :2] = pts[:, :2] / pts[:, 2][..., np.newaxis]
    if vel_depth:
        pts[:, 2] = velo[:, 0]
    pts[:, 0] = np.round(pts[:, 0]) - 1
    pts[:, 1] = np.round(pts[:, 1]) - 1
    val = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (pts[:, 0] < w) & (pts[:, 1] < h)
    pts = pts[val, :]
    depth = np.zeros((h, w))
    depth[pts[:, 1].astype(int), pts[:, 0].astype(int)] = pts[:, 2]
    inds = pts[:, 1] * (w - 1) + pts[:, 0] - 1
    for dd in [item for item, count in Counter(inds).items() if count > 1]:
        sel = np.where(inds == dd)[0]
        depth[int(pts[sel[0], 1]), int(pts[sel[0], 0])] = pts[sel, 2].min()
    depth[depth < 0] = 0
    return depth


@pytest.mark.parametrize("vel_depth", [True, False])
def test_velodyne_depth_map_matches_monodepth2(kitti_tree, vel_depth):
    cfg = ShardConfig(dataset="kitti", input=kitti_tree, kind="eval", cameras=("02",), vel_depth=vel_depth)
    frame = kitti.list_eval_frames(cfg).records[3]
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-5, 60, 20000), rng.uniform(-20, 20, 20000), rng.uniform(-2, 2, 20000),
                    np.ones(20000)], axis=1).astype(np.float32)
    from pipeline.sources.calib import read_calib, velo_to_image

    c2c = read_calib(os.path.join(kitti_tree, "2011_09_26", "calib_cam_to_cam.txt"))
    v2c = read_calib(os.path.join(kitti_tree, "2011_09_26", "calib_velo_to_cam.txt"))
    P, _ = velo_to_image(c2c, v2c, "02", source="test")
    ours = kitti.velodyne_depth_map(pts, P, (62, 19), vel_depth=vel_depth)
    ref = _reference_generate_depth_map(pts, P, (62, 19), vel_depth)
    assert (ours > 0).sum() > 100
    np.testing.assert_array_equal(ours, ref.astype(np.float32))
    gt = kitti.load_gt(frame)
    assert gt.shape == (19, 62) and gt.dtype == np.float32 and (gt > 0).any()


def test_split_and_calib_parsing_errors():
    with pytest.raises(ValueError, match=r"s.txt:2: side must be l or r"):
        parse_split_text("a/b 1 l\na/b 2 x\n", source="s.txt")
    with pytest.raises(ValueError, match=r"s.txt:1: frame 'z' is not an integer"):
        parse_split_text("a/b z l\n", source="s.txt")
    e = parse_split_text("# c\n2011_09_26/2011_09_26_drive_0002_sync 0000000069 l\n", source="s")
    assert (e[0].folder, e[0].frame, e[0].side, e[0].line) == ("2011_09_26/2011_09_26_drive_0002_sync", 69, "l", 2)
    c = parse_calib_text("calib_time: 09-Jan-2012 13:57:47\nS_rect_02: 1242 375\n", source="c")
    assert c["S_rect_02"].tolist() == [1242, 375] and "calib_time" not in c
    assert set(SOURCES) == {"kitti", "cityscapes"}


def test_kitti_groundtruth_png_source(tmp_path):
    """--gt-source groundtruth reads proj_depth/groundtruth/image_0X/%010d.png as uint16 / 256 metres."""
    from PIL import Image

    root = str(tmp_path / "k")
    make_kitti(root, drives=(1,), frames=3)
    gt_dir = os.path.join(root, "2011_09_26", "2011_09_26_drive_0001_sync", "proj_depth", "groundtruth", "image_02")
    os.makedirs(gt_dir)
    png = (np.arange(19 * 62, dtype=np.uint16).reshape(19, 62) * 7) % 20000
    Image.fromarray(png).save(os.path.join(gt_dir, "0000000001.png"))
    cfg = ShardConfig(dataset="kitti", input=root, kind="eval", cameras=("02",), gt_source="groundtruth")
    listing = kitti.list_eval_frames(cfg)
    assert [f.frame.index for f in listing.records] == [1]
    assert sorted(s.file.rsplit("/", 1)[1] for s in listing.skipped) == ["0000000000", "0000000002"]
    assert all(s.stage == "gt" and "groundtruth ground truth missing" in s.reason for s in listing.skipped)
    np.testing.assert_array_equal(kitti.load_gt(listing.records[0]), png.astype(np.float32) / 256)
