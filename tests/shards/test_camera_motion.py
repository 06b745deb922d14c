"""The true camera motion of training triplets: KITTI oxts + calibration -> pykitti camera poses -> relative motion
per triplet, stored in meta.json and manifest.parquet and counted in summary.json."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from pipeline.schema import TripletMeta
from pipeline.shards.config import ShardConfig
from pipeline.shards.tables import read_parquet
from pipeline.sources import kitti, oxts
from pipeline.synth import load_truth, truth_path
from tests.shards.checks import check_set


def test_oxts_chain_reproduces_the_synthetic_worlds_true_camera_poses(synth_kitti):
    date = os.path.join(synth_kitti, "2011_09_26")
    drive = os.path.join(date, "2011_09_26_drive_0001_sync")
    urls = [os.path.join(drive, "oxts", "data", f"{i:010d}.txt") for i in range(6)]
    poses = oxts.camera_poses(urls, oxts.T_cam_imu(date, "02"))
    truth = [load_truth(truth_path(os.path.join(drive, "image_02", "data", f"{i:010d}.png"))) for i in range(6)]
    for i in range(5):
        got = oxts.relative_motion(poses[i], poses[i + 1])
        want = np.linalg.inv(truth[i + 1].pose_cam_to_world) @ truth[i].pose_cam_to_world
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert 0.5 < np.linalg.norm(got[:3, 3]) < 2.0 and got[2, 3] < 0  # ~1 m forward: points come closer


def test_triplets_carry_their_camera_motion(synth_kitti):
    listing = kitti.list_triplets(ShardConfig(dataset="kitti", input=synth_kitti, cameras=("02", "03")))
    assert listing.records
    for t in listing.records:
        T = np.asarray(t.T_target_to_frames).reshape(3, 4, 4)
        np.testing.assert_allclose(T[1], np.eye(4), atol=1e-9)
        paths = [f.path for f in t.frames]
        poses = [load_truth(truth_path(p)).pose_cam_to_world for p in paths]
        for s in (0, 2):
            np.testing.assert_allclose(T[s], np.linalg.inv(poses[s]) @ poses[1], atol=1e-4)


def test_missing_or_broken_oxts_leave_the_triplet_without_motion(synth_kitti, tmp_path):
    import shutil

    root = str(tmp_path / "kitti")
    shutil.copytree(synth_kitti, root)
    drive = os.path.join(root, "2011_09_26", "2011_09_26_drive_0001_sync", "oxts", "data")
    os.remove(os.path.join(drive, "0000000002.txt"))
    with open(os.path.join(drive, "0000000004.txt"), "w") as f:
        f.write("49.0 8.4\n")  # truncated record
    listing = kitti.list_triplets(ShardConfig(dataset="kitti", input=root, cameras=("02",)))
    by_frame = {(t.sequence.endswith("0001_sync"), t.frames[1].index): t for t in listing.records}
    for target in (1, 2, 3, 4):
        assert by_frame[(True, target)].T_target_to_frames is None  # a neighbour's record is missing or broken
    assert all(t.T_target_to_frames is not None for (first, _), t in by_frame.items() if not first)
    assert len(listing.records) == 8 and not listing.skipped  # no triplet is lost for want of oxts


def test_shard_set_stores_the_motion_in_meta_and_manifest(synth_kitti, tmp_path):
    from pipeline.shards.build import build_shard_set, run_serial

    dst = str(tmp_path / "shards")
    cfg = ShardConfig(dataset="kitti", input=synth_kitti, cameras=("02",), width=104, height=32,
                      samples_per_shard=5)
    summary = build_shard_set(cfg, dst, run_tasks=run_serial, log=lambda _: None)
    assert summary.extra["num_with_camera_motion"] == summary.num_samples == 8
    manifest = read_parquet(os.path.join(dst, "manifest.parquet")).to_pylist()
    by_key = {r["key"]: r["T_target_to_frames"] for r in manifest}
    metas = check_set(dst)
    assert len(metas) == 8
    for key, meta in metas.items():
        assert meta["T_target_to_frames"] is not None
        assert np.allclose(meta["T_target_to_frames"], by_key[key])


def test_meta_of_older_shard_sets_reads_without_motion():
    meta = {"key": "k", "dataset": "kitti", "split": "train", "sequence": "s", "camera": "02",
            "frame_ids": [0, 1, 2], "sources": ["a", "b", "c"], "orig_size_wh": [8, 4], "stored_size_wh": [8, 4]}
    assert TripletMeta.from_json(json.dumps(meta)).T_target_to_frames is None


def test_parse_oxts_names_the_file_and_the_problem():
    with pytest.raises(ValueError, match="r.txt: oxts record has 2 fields"):
        oxts.parse_oxts("1 2", source="r.txt")
    with pytest.raises(ValueError, match="r.txt: oxts record is not numeric"):
        oxts.parse_oxts("1 2 3 4 5 x", source="r.txt")
    with pytest.raises(ValueError, match="not finite"):
        oxts.parse_oxts("1 2 nan 4 5 6", source="r.txt")
