"""Bad input through the real CLI (`python -m jobs.preprocess --no-ray`): faults from `rmdepth synth --fault` land
in errors.parquet with file and reason, exit 0 with a summary; --strict exits 1; a wrong SRC fails fast."""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest

from pipeline.shards import IncompleteShardSetError, read_errors, read_manifest, read_shard_set
from tests.shards.checks import check_set
from tests.shards.conftest import run_cli, synth

DRIVE = "2011_09_26/2011_09_26_drive_{:04d}_sync"


def _shard(*args):
    return run_cli("--no-ray", "--size", "32x12", "--samples-per-shard", "4", *args)


def test_faulty_kitti_train_errors_table(synth_kitti_faulty, tmp_path):
    out = str(tmp_path / "set")
    proc = _shard("--dataset", "kitti", "--input", synth_kitti_faulty, "--output", out)
    assert proc.returncode == 0, proc.stderr
    assert "9 samples" in proc.stdout and "5 inputs skipped" in proc.stdout and "errors.parquet" in proc.stdout
    errors = read_errors(out).to_pylist()
    by_stage = Counter(e["stage"] for e in errors)
    assert by_stage == {"decode": 3, "enumerate": 2}
    corrupt = os.path.join(synth_kitti_faulty, DRIVE.format(1), "image_02", "data", "0000000002.png")
    assert all(e["file"] == corrupt and "corrupt" in e["reason"] for e in errors if e["stage"] == "decode")
    assert sorted(e["key"][-2:] for e in errors if e["stage"] == "decode") == ["01", "02", "03"]
    assert all("drive_0003" in e["file"] and "2 frames" in e["reason"] for e in errors if e["stage"] == "enumerate")
    keys = {r["key"] for r in read_manifest(out).to_pylist()}
    assert len(keys) == 9 and not any(k.startswith("kitti_2011_09_26_2011_09_26_drive_0001_sync_02") for k in keys)
    check_set(out)


def test_faulty_kitti_eval_and_strict(synth_kitti_faulty, tmp_path):
    out = str(tmp_path / "ev")
    proc = _shard("--dataset", "kitti", "--input", synth_kitti_faulty, "--output", out, "--eval")
    assert proc.returncode == 0, proc.stderr
    errors = read_errors(out).to_pylist()
    velo = os.path.join(synth_kitti_faulty, DRIVE.format(2), "velodyne_points", "data", "0000000001.bin")
    gt_errors = [e for e in errors if e["stage"] == "gt"]
    assert len(gt_errors) == 2 and all(e["file"] == velo and "0 bytes" in e["reason"] for e in gt_errors)
    assert Counter(e["stage"] for e in errors) == {"gt": 2, "decode": 1}
    # 5 + 5 + 2 frames x 2 cameras, minus the corrupt image and the two frames without velodyne
    assert read_shard_set(out).num_samples == 24 - 3
    strict = str(tmp_path / "strict")
    proc = _shard("--dataset", "kitti", "--input", synth_kitti_faulty, "--output", strict, "--strict")
    assert proc.returncode == 1 and "--strict" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(IncompleteShardSetError):
        read_shard_set(strict)
    strict_eval = str(tmp_path / "strict_eval")  # listing is clean here: the errors appear while encoding
    proc = _shard("--dataset", "kitti", "--input", synth_kitti_faulty, "--output", strict_eval, "--eval", "--strict",
                  "--split", "test")
    assert proc.returncode == 1 and "input(s) skipped" in proc.stderr


def test_broken_calibration_skips_its_camera(tmp_path):
    root = str(tmp_path / "raw")
    synth("kitti", root, "--drives", "1", "--frames", "3", "--size", "48x16", "--date", "2011_09_26")
    synth("kitti", root, "--drives", "2", "--frames", "3", "--size", "48x16", "--date", "2011_09_28",
          "--fault", "malformed-calib")
    out = str(tmp_path / "set")
    proc = _shard("--dataset", "kitti", "--input", root, "--output", out)
    assert proc.returncode == 0, proc.stderr
    errors = read_errors(out).to_pylist()
    calib = os.path.join(root, "2011_09_28", "calib_cam_to_cam.txt")
    assert len(errors) == 2 and all(e["stage"] == "calib" and e["file"] == calib and "camera 02" in e["reason"]
                                    and "P_rect_02" in e["reason"] for e in errors)  # one per drive of camera 02
    # 2011_09_26: 1 drive x 2 cameras x 1 target; 2011_09_28: camera 03 of its 2 drives is still good
    assert read_shard_set(out).num_samples == 4
    shutil.rmtree(os.path.join(root, "2011_09_26"))
    proc = _shard("--dataset", "kitti", "--input", root, "--output", str(tmp_path / "none"), "--cameras", "02")
    assert proc.returncode == 1 and "no valid triplets" in proc.stderr and calib in proc.stderr


def test_cityscapes_faults(tmp_path):
    root = synth("cityscapes", str(tmp_path / "cs"), "--cities", "aachen,bochum", "--sequences", "2", "--frames", "6",
                 "--size", "64x32", "--fault", "corrupt-png:aachen:0:2", "--fault", "missing-camera:aachen:1",
                 "--fault", "malformed-camera:bochum:0")
    out = str(tmp_path / "set")
    proc = _shard("--dataset", "cityscapes", "--input", root, "--output", out)
    assert proc.returncode == 0, proc.stderr
    errors = read_errors(out).to_pylist()
    stages = Counter((e["stage"], e["sequence"]) for e in errors)
    # 6 frames, gap 2: targets at snippet indices 2, 3; index 2 is corrupt -> target 2 skipped (its own frame)
    assert stages == {("decode", "aachen_000000"): 1, ("calib", "aachen_000001"): 1, ("calib", "bochum_000000"): 1}
    assert any("malformed camera json" in e["reason"] and e["file"].endswith("_camera.json") for e in errors)
    summary = read_shard_set(out)
    assert summary.num_samples == 2 * 4 - 2 - 2 - 1
    acc = summary.extra["accounting"]  # every planned sample is written or skipped with a record
    assert acc == {"inputs_skipped_while_listing": 2, "filtered": 0, "planned": 4, "skipped_while_encoding": 1,
                   "written": 3}


def test_bad_src_fails_fast(tmp_path, synth_cityscapes):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _shard("--dataset", "kitti", "--input", str(empty), "--output", str(tmp_path / "o"))
    assert proc.returncode == 1 and "does not look like KITTI raw" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("--dataset", "kitti", "--input", str(empty), "--output", str(tmp_path / "o"))  # Ray path
    assert proc.returncode == 1 and "does not look like KITTI raw" in proc.stderr  # fails before Ray starts
    proc = _shard("--dataset", "kitti", "--input", synth_cityscapes, "--output", str(tmp_path / "o"))
    assert proc.returncode == 1 and "does not look like KITTI raw" in proc.stderr
    proc = _shard("--dataset", "kitti", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o"))
    assert proc.returncode == 1 and "not found" in proc.stderr
    proc = _shard("--dataset", "kitti", "--input", str(empty), "--output", str(tmp_path / "o"), "--cameras", "04")
    assert proc.returncode == 2 and "cameras" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_sample_lost_without_a_record_stops_the_set():
    from types import SimpleNamespace

    from pipeline.shards.build import Plan, ShardSetError, _accounting
    from pipeline.sources.records import Listing

    plan = Plan(listing=Listing(records=["a", "b", "c"]), tasks=[])
    outcomes = [SimpleNamespace(skipped=[{"file": "x"}])]
    assert _accounting(plan, outcomes, written=2, dst="d")["planned"] == 3
    with pytest.raises(ShardSetError, match="3 samples planned, but 1 written and 1 skipped"):
        _accounting(plan, outcomes, written=1, dst="d")
