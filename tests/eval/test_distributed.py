"""`rmdepth eval` on a real checkpoint and real eval shards: 2 Ray workers == 1 worker == in-process, every frame
counted exactly once with an uneven number of frames; all outputs written (also to S3)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.evaluate import make_protocol
from jobs.errors import JobError
from jobs.eval_runner import evaluate_checkpoint, merge_parts
from model.metrics import METRIC_NAMES
from pipeline.loader.shardset import read_summary


@pytest.mark.ray
@pytest.mark.slow
def test_two_ray_workers_equal_one(ray_local, eval_shards, checkpoint):
    n = read_summary(eval_shards).num_samples
    assert n % 2 == 1, n  # an odd number of frames cannot split evenly over 2 workers
    protocol = make_protocol("kitti-eigen")
    kw = dict(checkpoint=checkpoint, data=eval_shards, protocol=protocol, batch_size=3, baseline=True, grid_samples=2)
    r1 = evaluate_checkpoint(num_workers=1, **kw)
    r2 = evaluate_checkpoint(num_workers=2, **kw)
    for r in (r1, r2):
        assert len(r.rows) == n and len({row["key"] for row in r.rows}) == n
    by_key = lambda rows: {row["key"]: row for row in rows}  # noqa: E731
    assert set(by_key(r2.rows)) == set(by_key(r1.rows))
    for m in METRIC_NAMES:
        assert r2.metrics[m] == pytest.approx(r1.metrics[m], rel=1e-6)
        assert r2.baseline[m] == pytest.approx(r1.baseline[m], rel=1e-9)
    for key, row in by_key(r2.rows).items():
        assert row["abs_rel"] == pytest.approx(by_key(r1.rows)[key]["abs_rel"], rel=1e-5)
    assert len(r2.samples) == 2


def test_merge_detects_double_and_missing_counts():
    from engine.evaluate import PartResult

    def part(rank, keys):
        return PartResult(rank=rank, rows=[{"key": k} for k in keys], baseline_rows=[], samples=[], identity={},
                          num_batches=1, seconds=0.0)

    _, rows = merge_parts([part(1, ["c"]), part(0, ["a", "b"])], expected=3, data="d")
    assert [r["key"] for r in rows] == ["a", "b", "c"]
    with pytest.raises(JobError, match="more than once"):
        merge_parts([part(0, ["a", "b"]), part(1, ["b"])], expected=3, data="d")
    with pytest.raises(JobError, match="evaluated 2 frames but the shard set holds 3"):
        merge_parts([part(0, ["a"]), part(1, ["b"])], expected=3, data="d")


@pytest.mark.s3
def test_cli_eval_writes_all_outputs_to_s3(s3_bucket, eval_shards, checkpoint):
    from jobs.cli import main
    from pipeline import storage

    out = f"{s3_bucket}/eval/tiny"
    rc = main(["eval", "--checkpoint", checkpoint, "--data", eval_shards, "--out", out, "--num-workers", "0",
               "--baseline", "constant", "--batch-size", "4", "--json", f"{out}/m.json"])
    assert rc == 0
    names = set(storage.listdir(out))
    assert {"metrics.json", "per_image.parquet", "grid.png", "report.md", "report.html", "m.json"} <= names
    summary = json.loads(storage.read_text(f"{out}/metrics.json"))
    n = read_summary(eval_shards).num_samples
    assert summary["num_images"] == n and summary["checkpoint"]["step"] == 100
    assert summary["protocol"]["crop"] == "garg" and summary["baseline"] is not None
    import io

    table = pq.read_table(io.BytesIO(storage.read_bytes(f"{out}/per_image.parquet"))).to_pylist()
    model_rows = [r for r in table if r["model"] == "model"]
    assert len(model_rows) == n and len(table) == 2 * n
    mean = {m: float(np.mean([r[m] for r in model_rows])) for m in METRIC_NAMES}
    assert mean == pytest.approx(summary["metrics"])
    md = storage.read_text(f"{out}/report.md")
    assert "| model |" in md and "constant depth" in md and "grid.png" in md and "checkpoint_e000_s000000100" in md
    assert summary["eval_set"]["gt_source"] == "velodyne" and "## Eval set" in md
    assert "<table>" in storage.read_text(f"{out}/report.html")


def test_cityscapes_shards_refuse_a_second_gt_cut():
    from jobs.eval_runner import protocol_for_shard_set
    from pipeline.schema import ShardSetSummary

    def summary(dataset, crop):
        return ShardSetSummary(dataset=dataset, split="test", kind="eval", num_samples=1, stored_size_wh=(208, 64),
                               shards=(), num_errors=0, config={"crop_bottom_frac": crop}, code_version="x",
                               created_at="now")

    cs = make_protocol("cityscapes")
    assert protocol_for_shard_set(cs, summary("cityscapes", 0.25)) == cs
    with pytest.raises(JobError, match="already store GT cut"):
        protocol_for_shard_set(make_protocol("cityscapes", gt_top_fraction=0.75), summary("cityscapes", -1.0))
    cut = make_protocol("cityscapes", gt_top_fraction=0.75)
    assert protocol_for_shard_set(cut, summary("cityscapes", 0.0)) == cut  # uncut GT may be cut by the protocol
