"""Shard sets on local paths (serial runner): counts, contents, determinism, resume no-op, config clashes."""

from __future__ import annotations

import os

import pytest

from pipeline.schema import SUMMARY_FILE
from pipeline.shards import IncompleteShardSetError, read_errors, read_manifest, read_shard_set
from pipeline.shards.build import ShardSetError, build_shard_set, run_serial
from pipeline.shards.config import ShardConfig
from pipeline.sources import cityscapes, kitti
from tests.shards.checks import check_set

quiet = {"log": lambda m: None}


def _cfg(root, **kw):
    return ShardConfig(**{"dataset": "kitti", "input": root, "width": 32, "height": 16, "samples_per_shard": 5, **kw})


def test_kitti_set_contents_and_layout(kitti_tree, tmp_path):
    out = str(tmp_path / "set")
    cfg = _cfg(kitti_tree)
    summary = build_shard_set(cfg, out, run_tasks=run_serial, **quiet)
    expected = {t.key: t for t in kitti.list_triplets(cfg).records}
    assert summary.num_samples == len(expected) == 12 and summary.kind == "train"
    assert [s.name for s in summary.shards] == [f"kitti-train-{i:06d}.tar" for i in range(3)]
    assert [s.num_samples for s in summary.shards] == [5, 5, 2]
    assert summary.code_version and summary.config["width"] == 32 and summary.config["frame_gap"] == 1
    metas = check_set(out, K_source={k: (t.K_33, t.size_wh) for k, t in expected.items()})
    assert set(metas) == set(expected)
    for key, meta in metas.items():
        assert tuple(meta["frame_ids"]) == tuple(f.index for f in expected[key].frames)
        assert tuple(meta["sources"]) == tuple(f.path for f in expected[key].frames)
    names = sorted(os.listdir(out))
    assert "_parts" not in names and SUMMARY_FILE in names and len(read_errors(out)) == 0
    # shuffled across shards: shard 0 is not simply the first 5 keys in sorted order
    order = [r["key"] for r in read_manifest(out).to_pylist()]
    assert order != sorted(order)


def test_deterministic_and_rerun_is_noop(kitti_tree, tmp_path):
    a = build_shard_set(_cfg(kitti_tree), str(tmp_path / "a"), run_tasks=run_serial, **quiet)
    b = build_shard_set(_cfg(kitti_tree), str(tmp_path / "b"), run_tasks=run_serial, **quiet)
    assert [s.sha256 for s in a.shards] == [s.sha256 for s in b.shards]
    c = build_shard_set(_cfg(kitti_tree, seed=1), str(tmp_path / "c"), run_tasks=run_serial, **quiet)
    assert [s.sha256 for s in a.shards] != [s.sha256 for s in c.shards]
    mtime = os.path.getmtime(tmp_path / "a" / "kitti-train-000000.tar")
    calls = []

    def counting(tasks):
        calls.extend(tasks)
        return run_serial(tasks)

    again = build_shard_set(_cfg(kitti_tree), str(tmp_path / "a"), run_tasks=counting, **quiet)
    assert again == a and not calls and os.path.getmtime(tmp_path / "a" / "kitti-train-000000.tar") == mtime


def test_different_config_refused_then_overwrite(kitti_tree, tmp_path):
    out = str(tmp_path / "set")
    build_shard_set(_cfg(kitti_tree), out, run_tasks=run_serial, **quiet)
    with pytest.raises(ShardSetError, match=r"different config \(width: 32 there vs 48 now"):
        build_shard_set(_cfg(kitti_tree, width=48), out, run_tasks=run_serial, **quiet)
    s = build_shard_set(_cfg(kitti_tree, width=48, samples_per_shard=100), out, run_tasks=run_serial,
                        overwrite=True, **quiet)
    assert len(s.shards) == 1 and sorted(os.listdir(out)) == sorted(
        ["kitti-train-000000.tar", "kitti-train-000000.idx", "manifest.parquet", "errors.parquet", "summary.json"])
    check_set(out)


def test_reader_refuses_incomplete_sets(kitti_tree, tmp_path):
    out = tmp_path / "set"
    with pytest.raises(IncompleteShardSetError, match="no shard set here"):
        read_shard_set(str(out))
    build_shard_set(_cfg(kitti_tree), str(out), run_tasks=run_serial, **quiet)
    (out / "kitti-train-000001.idx").unlink()
    with pytest.raises(IncompleteShardSetError, match="kitti-train-000001.idx"):
        read_shard_set(str(out))
    (out / SUMMARY_FILE).unlink()
    with pytest.raises(IncompleteShardSetError, match="rerun the same command"):
        read_shard_set(str(out))


def test_cityscapes_set_crops_bottom(cs_tree, tmp_path):
    out = str(tmp_path / "cs")
    cfg = ShardConfig(dataset="cityscapes", input=cs_tree, width=32, height=12, samples_per_shard=4)
    summary = build_shard_set(cfg, out, run_tasks=run_serial, **quiet)
    assert summary.num_samples == 6
    expected = {t.key: t for t in cityscapes.list_triplets(cfg).records}
    metas = check_set(out, K_source={k: (t.K_33, t.size_wh) for k, t in expected.items()})
    rows = read_manifest(out).to_pylist()
    assert all(r["crop_bottom"] == 8 and (r["orig_w"], r["orig_h"]) == (64, 32) for r in rows)
    assert all(tuple(m["orig_size_wh"]) == (64, 32) for m in metas.values())


def test_eval_set_keeps_split_order_and_gt(kitti_tree, tmp_path):
    split = tmp_path / "test_files.txt"
    split.write_text("2011_09_26/2011_09_26_drive_0002_sync 3 l\n2011_09_26/2011_09_26_drive_0001_sync 0 l\n"
                     "2011_09_26/2011_09_26_drive_0001_sync 4 r\n")
    out = str(tmp_path / "ev")
    cfg = _cfg(kitti_tree, kind="eval", split_file=str(split), samples_per_shard=2)
    summary = build_shard_set(cfg, out, run_tasks=run_serial, **quiet)
    assert summary.kind == "eval" and summary.split == "test" and summary.extra["vel_depth"] is True
    metas = check_set(out)
    order = [r["key"] for r in read_manifest(out).to_pylist()]
    assert [metas[k]["frame_id"] for k in order] == [3, 0, 4]
    assert [metas[k]["camera"] for k in order] == ["02", "02", "03"]
