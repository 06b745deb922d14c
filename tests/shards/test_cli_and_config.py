"""CLI wiring (`rmdepth shard|export-gt|splits`) and ShardConfig validation."""

from __future__ import annotations

import pytest

from jobs.cli import main
from jobs.splits import SPLITS
from pipeline.shards import read_shard_set
from pipeline.shards.config import ShardConfig


def test_rmdepth_shard_in_process(kitti_tree, tmp_path, capsys):
    out = str(tmp_path / "set")
    rc = main(["shard", "--no-ray", "--dataset", "kitti", "--input", kitti_tree, "--output", out, "--size", "32x16",
               "--cameras", "02", "--samples-per-shard", "2", "--jpeg-quality", "80"])
    assert rc == 0
    assert "6 samples in 3 shards (32x16), 0 inputs skipped" in capsys.readouterr().out
    s = read_shard_set(out)
    assert s.config["cameras"] == ["02"] and s.config["jpeg_quality"] == 80
    rc = main(["shard", "--no-ray", "--dataset", "kitti", "--input", kitti_tree, "--output", out, "--size", "32x16"])
    assert rc == 1 and "different config (cameras" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # a usage error, found while parsing
        main(["shard", "--no-ray", "--dataset", "kitti", "--input", kitti_tree, "--output", out, "--size", "3x"])
    assert e.value.code == 2 and "--size: expected WxH" in capsys.readouterr().err


def test_shard_set_recipe_round_trips_through_its_summary(kitti_tree, tmp_path, capsys):
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    assert main(["shard", "--no-ray", "--dataset", "kitti", "--input", kitti_tree, "--output", first,
                 "--size", "32x16", "--cameras", "02", "--samples-per-shard", "2"]) == 0
    # the same recipe from the stored summary.json, with one override on top
    assert main(["shard", "--no-ray", "--config", f"{first}/summary.json", "--set", "jpeg_quality=70",
                 "--output", second]) == 0
    a, b = read_shard_set(first).config, read_shard_set(second).config
    assert {**a, "jpeg_quality": 70} == b
    capsys.readouterr()


def test_shard_config_validation():
    c = ShardConfig(dataset="cityscapes", input="x")
    assert (c.frame_gap, c.crop_bottom_frac, c.cameras, c.gt_source, c.split) == (2, 0.25, ("left",), "disparity",
                                                                                 "train")
    e = ShardConfig(dataset="kitti", input="x", kind="eval")
    assert (e.split, e.frame_gap, e.gt_source, e.vel_depth) == ("test", 1, "velodyne", True)
    for bad, match in [({"dataset": "nyu"}, "dataset"), ({"cameras": ("01",)}, "cameras"), ({"width": 4}, "8x8"),
                       ({"jpeg_quality": 0}, "jpeg_quality"), ({"split": "a-b"}, "split"),
                       ({"gt_source": "disparity"}, "gt_source"), ({"crop_bottom_frac": 1.0}, "crop_bottom_frac"),
                       ({"samples_per_shard": 0}, "samples_per_shard"), ({"min_speed": -1.0}, "min_speed")]:
        with pytest.raises(ValueError, match=match):
            ShardConfig(**{"dataset": "kitti", "input": "x", **bad})


def test_splits_cli(tmp_path, capsys):
    assert main(["splits", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out and url in out for name, (url, _, _) in SPLITS.items())
    assert main(["splits", "download", "nope", "--out", str(tmp_path)]) == 2
    rc = main(["splits", "download", "eigen_test", "--out", str(tmp_path), "--timeout", "5"])
    if rc == 0:  # online: the real Eigen test list
        lines = (tmp_path / "eigen" / "test_files.txt").read_text().split("\n")
        assert len([ln for ln in lines if ln.strip()]) == 697
    else:  # offline: one clear line with the URL
        err = capsys.readouterr().err
        assert rc == 1 and "cannot download eigen_test from https://" in err and "Traceback" not in err
