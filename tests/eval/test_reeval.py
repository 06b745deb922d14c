"""`rmdepth reeval`: checkpoint discovery, idempotent re-runs, new checkpoints, a run killed half-way: every
checkpoint ends with exactly one row in the results table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from engine.results import discover_checkpoints, read_results
from jobs.cli import main
from tests.eval.helpers import ROOT, make_checkpoint


def _parts(results):
    """Complete result parts (a kill -9 mid-write can leave a `<part>.parquet.tmp-<id>`, which is not one)."""
    d = os.path.join(results, "parts")
    return sorted(f for f in os.listdir(d) if f.endswith(".parquet")) if os.path.isdir(d) else []


def test_discovery_is_tolerant(tmp_path):
    runs = tmp_path / "runs"
    a1 = make_checkpoint(str(runs / "a" / "checkpoint_e000_s000000010"), step=10)
    (runs / "a" / "checkpoint_e000_s000000020").mkdir(parents=True)  # half-written: no files yet
    (runs / "a" / "checkpoint_e000_s000000020" / "model.pt").write_bytes(b"x")
    (runs / "a" / "tensorboard").mkdir()
    (runs / "a" / "checkpoint_notes.txt").write_text("not a dir")
    (runs / "b" / "logs").mkdir(parents=True)
    found, skipped = discover_checkpoints(str(runs))
    assert [(c.run, c.name) for c in found] == [("a", "checkpoint_e000_s000000010")]
    assert len(skipped) == 1 and "missing identity.json, config.json" in skipped[0]
    assert [c.url for c in discover_checkpoints(str(runs / "a"))[0]] == [a1]  # a single run dir
    assert [c.name for c in discover_checkpoints(a1)[0]] == ["checkpoint_e000_s000000010"]  # a single checkpoint
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_checkpoints(str(tmp_path / "nope"))


@pytest.mark.slow
def test_reeval_runs_twice_new_checkpoints_and_kill(tmp_path, eval_shards):
    runs, results = tmp_path / "runs", str(tmp_path / "results")
    make_checkpoint(str(runs / "a" / "checkpoint_e000_s000000100"), step=100, seed=1)
    argv = ["reeval", "--runs", str(runs), "--data", eval_shards, "--results", results, "--num-workers", "0",
            "--batch-size", "4"]
    assert main(argv) == 0
    first = _parts(results)
    assert len(first) == 1 and len(read_results(results)) == 1
    mtimes = {p: os.path.getmtime(os.path.join(results, "parts", p)) for p in first}
    assert main(argv) == 0  # nothing new: nothing evaluated, nothing rewritten
    assert _parts(results) == first
    assert {p: os.path.getmtime(os.path.join(results, "parts", p)) for p in first} == mtimes
    # two new checkpoints appear; the run is killed as soon as the first of them has its result
    make_checkpoint(str(runs / "a" / "checkpoint_e001_s000000200"), step=200, seed=2)
    make_checkpoint(str(runs / "b" / "checkpoint_e000_s000000050"), step=50, seed=3)
    proc = subprocess.Popen([sys.executable, "-m", "jobs.reeval", *argv[1:]], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while len(_parts(results)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(_parts(results)) == 2, "the killed run should have written exactly one new part"
    # what a kill mid-write leaves is at most an unfinished temporary file, never a part that looks complete
    assert all(".parquet.tmp-" in f for f in os.listdir(os.path.join(results, "parts")) if not f.endswith(".parquet"))
    assert main(argv) == 0  # the rerun evaluates only the checkpoint the killed run did not finish
    rows = read_results(results)
    assert len(rows) == 3 and len(_parts(results)) == 3
    assert sorted((r["run"], r["step"]) for r in rows) == [("a", 100), ("a", 200), ("b", 50)]
    assert len({r["checkpoint_url"] for r in rows}) == 3 and len({r["key"] for r in rows}) == 3
    assert all(r["num_images"] == rows[0]["num_images"] > 0 and r["num_skipped"] == 0 for r in rows)
    assert all(r["protocol"] == "kitti-eigen" and r["baseline_abs_rel"] > 0 for r in rows)
    for name in ("summary.md", "summary_abs_rel.png", "summary_a1.png"):
        assert os.path.getsize(os.path.join(results, name)) > 0
    assert "best abs_rel" in open(os.path.join(results, "summary.md")).read()


def test_results_reader_dedupes_by_key(tmp_path):
    from engine.results import CheckpointRef, make_row, part_url, result_key, write_part

    ck = CheckpointRef(run="r", name="checkpoint_x", url=str(tmp_path / "r" / "checkpoint_x"))
    settings = {"name": "kitti-eigen"}
    key = result_key(ck.url, settings, "e1")
    metrics = dict.fromkeys(("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"), 0.5)
    row = make_row(ckpt=ck, identity={"step": 7}, protocol_settings=settings, data_url="d", evalset="e1", key=key,
                   metrics=metrics, num_images=3, baseline=None)
    results = str(tmp_path / "res")
    write_part(part_url(results, ck, "kitti-eigen", "e1", key), row)
    # a concurrent writer that used another file name for the same key must not create a second row
    write_part(os.path.join(results, "parts", "stray-copy.parquet"), {**row, "evaluated_at": "9999"})
    rows = read_results(results)
    assert len(rows) == 1 and rows[0]["evaluated_at"] == "9999" and rows[0]["step"] == 7


@pytest.mark.s3
def test_reeval_with_runs_and_results_on_s3(tmp_path, s3_bucket, eval_shards):
    from pipeline import storage

    local = make_checkpoint(str(tmp_path / "ck"), step=30, seed=7)
    remote = f"{s3_bucket}/runs/exp1/checkpoint_e000_s000000030"
    for name in os.listdir(local):
        storage.put_file(os.path.join(local, name), f"{remote}/{name}")
    storage.write_text(f"{s3_bucket}/runs/exp1/checkpoint_e000_s000000040/model.pt", "half-written")
    corrupt = f"{s3_bucket}/runs/exp2/checkpoint_e000_s000000010"  # all files present, model.pt unreadable
    for name in ("identity.json", "config.json"):
        storage.put_file(os.path.join(local, name), f"{corrupt}/{name}")
    storage.write_text(f"{corrupt}/model.pt", "garbage")
    results = f"{s3_bucket}/results"
    argv = ["reeval", "--runs", f"{s3_bucket}/runs", "--data", eval_shards, "--results", results, "--num-workers", "0"]
    assert main(argv) == 1  # the corrupt checkpoint is reported and left for the next run; the good one is done
    assert main(argv) == 1
    rows = read_results(results)
    assert [(r["run"], r["step"], r["checkpoint_url"]) for r in rows] == [("exp1", 30, remote)]
    assert len(storage.listdir(f"{results}/parts")) == 1
    assert "summary.md" in storage.listdir(results)
