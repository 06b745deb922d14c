"""Exactly once under crashes: the job is SIGKILLed at several points (fault hook, in a forked child or a real CLI
subprocess), then rerun; the final set holds every planned triplet exactly once, finished shards are not redone,
and the manifest's sha256s match the files."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal

import pytest

from pipeline.faults import ENV
from pipeline.shards import IncompleteShardSetError, read_manifest, read_shard_set
from pipeline.shards.build import build_shard_set, run_serial
from pipeline.shards.config import ShardConfig
from pipeline.sources import kitti
from tests.shards.checks import check_set


def _cfg(root):
    return ShardConfig(dataset="kitti", input=root, width=32, height=16, samples_per_shard=3)


def _child(root, out, fault):
    os.environ[ENV] = fault
    build_shard_set(_cfg(root), out, run_tasks=run_serial, log=lambda m: None)
    os._exit(0)


def _run_killed(root, out, fault) -> int:
    p = mp.get_context("fork").Process(target=_child, args=(root, out, fault))
    p.start()
    p.join(120)
    return p.exitcode


def _assert_exactly_once(root, out):
    expected = {t.key for t in kitti.list_triplets(_cfg(root)).records}
    keys = [r["key"] for r in read_manifest(out).to_pylist()]
    assert len(keys) == len(set(keys)) and set(keys) == expected
    metas = check_set(out)  # sha256 + idx + contents of every shard
    assert set(metas) == expected
    assert not [n for n in os.listdir(out) if ".tmp-" in n or n == "_parts"]


@pytest.mark.parametrize("fault,reused", [("point=after_shard,at=1", 2), ("point=before_tar,at=2", 2),
                                          ("point=mid_tar,at=0", 0), ("point=before_summary", 4)])
def test_killed_then_rerun_completes_exactly_once(kitti_tree, tmp_path, fault, reused):
    out = str(tmp_path / "set")
    assert _run_killed(kitti_tree, out, fault) == -signal.SIGKILL
    with pytest.raises(IncompleteShardSetError, match="rerun the same command"):
        read_shard_set(out)
    if "mid_tar" in fault:  # a half-written tar sits at the final name: it must not count as finished
        assert os.path.getsize(os.path.join(out, "kitti-train-000000.tar")) > 0
    summary = build_shard_set(_cfg(kitti_tree), out, run_tasks=run_serial, log=lambda m: None)
    assert summary.extra["num_reused_shards"] == reused
    _assert_exactly_once(kitti_tree, out)


def test_killed_twice_then_rerun(kitti_tree, tmp_path):
    out = str(tmp_path / "set")
    assert _run_killed(kitti_tree, out, "point=after_shard,at=0") == -signal.SIGKILL
    assert _run_killed(kitti_tree, out, "point=mid_tar,at=2") == -signal.SIGKILL
    summary = build_shard_set(_cfg(kitti_tree), out, run_tasks=run_serial, log=lambda m: None)
    assert summary.extra["num_reused_shards"] == 2
    _assert_exactly_once(kitti_tree, out)
