"""`rmdepth eval` on an eval shard set holding damaged frames: each is skipped, named (shard and key) in one log line
and listed in metrics.json; evaluated + skipped = every frame of the set, none counted twice, also split over Ray
workers; past --max-bad-frames the evaluation stops with one line naming the shard."""

from __future__ import annotations

import json
import os
import re

import pytest

from engine.evaluate import PartResult, make_protocol
from jobs.cli import main
from jobs.errors import JobError
from jobs.eval_runner import evaluate_checkpoint, merge_parts
from tests.loader.fixture_shards import damaged_copy


def _eval(capsys, checkpoint, data, out, *extra) -> tuple[int, str]:
    rc = main(["eval", "--checkpoint", checkpoint, "--data", data, "--out", out, "--num-workers", "0",
               "--batch-size", "3", "--grid-samples", "0", *extra])
    return rc, capsys.readouterr().err


def test_a_damaged_frame_is_skipped_logged_and_listed(eval_shards, checkpoint, tmp_path, capsys):
    bad = str(tmp_path / "bad")
    [(tar, entry)] = damaged_copy(eval_shards, bad, kind="eval", samples=(2,))
    rc, err = _eval(capsys, checkpoint, eval_shards, str(tmp_path / "clean"))
    assert rc == 0, err
    rc, err = _eval(capsys, checkpoint, bad, str(tmp_path / "out"))
    assert rc == 0, err
    logged = [ln for ln in err.splitlines() if "damaged evaluation frame" in ln]
    assert len(logged) == 1 and logged[0].startswith(
        f"skipped a damaged evaluation frame (1 so far): {tar}: sample '{entry.key}': tgt.jpg is not a decodable image")
    clean = json.loads(open(tmp_path / "clean" / "metrics.json").read())
    got = json.loads(open(tmp_path / "out" / "metrics.json").read())
    assert clean["frames"] == {"total": 7, "evaluated": 7, "skipped": 0} and clean["skipped"] == []
    assert got["frames"] == {"total": 7, "evaluated": 6, "skipped": 1} and got["num_images"] == 6
    assert [(s["shard"], s["key"]) for s in got["skipped"]] == [(tar, entry.key)]
    assert got["skipped"][0]["reason"].startswith("tgt.jpg is not a decodable image")
    assert "1 damaged frame(s) of 7 skipped" in open(tmp_path / "out" / "report.md").read()


def test_past_the_budget_eval_stops_with_one_line_naming_the_shard(eval_shards, checkpoint, tmp_path, capsys):
    bad = str(tmp_path / "bad")
    [(tar, entry)] = damaged_copy(eval_shards, bad, kind="eval", samples=(4,), components=("gt.npy",))
    rc, err = _eval(capsys, checkpoint, bad, str(tmp_path / "out"), "--max-bad-frames", "0")
    assert rc == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"rmdepth eval: error: more than max_bad_frames=0 damaged evaluation frames; the last: "
                           f"{tar}: sample '{entry.key}': gt.npy is not a valid .npy file (")
    assert not os.path.exists(tmp_path / "out" / "metrics.json")


def _part(rank: int, keys: list[str], skipped: list[str]) -> PartResult:
    return PartResult(rank=rank, rows=[{"key": k} for k in keys], baseline_rows=[], samples=[], identity={},
                      num_batches=1, seconds=0.0, skipped=[{"shard": "t", "key": k, "reason": "r"} for k in skipped])


def test_merge_counts_skipped_frames_once():
    _, rows = merge_parts([_part(1, ["c"], ["d"]), _part(0, ["a"], ["b"])], expected=4, data="d")
    assert [r["key"] for r in rows] == ["a", "c"]
    with pytest.raises(JobError, match=r"more than once across workers: \['b'\]"):
        merge_parts([_part(0, ["a", "b"], []), _part(1, ["c"], ["b"])], expected=3, data="d")
    with pytest.raises(JobError, match="evaluated 1 frames and skipped 1 but the shard set holds 3"):
        merge_parts([_part(0, ["a"], []), _part(1, [], ["b"])], expected=3, data="d")


@pytest.mark.ray
@pytest.mark.slow
def test_two_ray_workers_report_each_skip_once(ray_local, eval_shards, checkpoint, tmp_path):
    """7 frames over 2 workers in batches of 3: frame 3 ends worker 0's part and frame 6 worker 1's, and both fill
    their part's padding slots; each damaged frame is still reported exactly once, as when evaluated in-process."""
    bad = str(tmp_path / "bad")
    damaged = damaged_copy(eval_shards, bad, kind="eval", samples=(3, 6))
    kw = dict(checkpoint=checkpoint, data=bad, protocol=make_protocol("kitti-eigen"), batch_size=3, grid_samples=0)
    one, two = evaluate_checkpoint(num_workers=0, **kw), evaluate_checkpoint(num_workers=2, **kw)
    for r in (one, two):
        assert [(s["shard"], s["key"]) for s in r.skipped] == [(tar, e.key) for tar, e in damaged]
        assert len(r.rows) == 5 and not {e.key for _, e in damaged} & {row["key"] for row in r.rows}
    assert [row["key"] for row in two.rows] == [row["key"] for row in one.rows]
    assert two.metrics == pytest.approx(one.metrics, rel=1e-6)
    either = "|".join(re.escape(f"{tar}: sample '{e.key}'") for tar, e in damaged)  # both workers stop; one is told
    with pytest.raises(JobError, match=rf"^a worker failed: more than max_bad_frames=0 .* the last: ({either})"):
        evaluate_checkpoint(num_workers=2, max_bad_frames=0, **kw)
    # each worker stays within a budget of 1, together they exceed it: the driver stops
    with pytest.raises(JobError, match=rf"2 damaged frames, more than max_bad_frames=1; the last: {damaged[1][0]}"):
        evaluate_checkpoint(num_workers=2, max_bad_frames=1, **kw)
