"""Real S3 protocol (moto server in a subprocess) and a real local Ray cluster."""

from __future__ import annotations

import signal

import fsspec
import pytest

from pipeline.shards import read_manifest, read_shard_set, shard_urls
from pipeline.shards.build import build_shard_set, run_serial
from pipeline.shards.config import ShardConfig
from tests.shards.checks import check_set
from tests.shards.conftest import run_cli

quiet = {"log": lambda m: None}


def _cfg(root, **kw):
    return ShardConfig(**{"dataset": "kitti", "input": root, "width": 32, "height": 16, "samples_per_shard": 5, **kw})


@pytest.mark.s3
def test_s3_output_equals_local_output(kitti_tree, tmp_path, s3_bucket):
    local = build_shard_set(_cfg(kitti_tree), str(tmp_path / "local"), run_tasks=run_serial, **quiet)
    url = f"{s3_bucket}/shards/kitti-train"
    remote = build_shard_set(_cfg(kitti_tree), url, run_tasks=run_serial, **quiet)
    assert [s.sha256 for s in remote.shards] == [s.sha256 for s in local.shards]
    assert read_shard_set(url).shards == local.shards
    assert [u for u, _ in shard_urls(url)] == [f"{url}/kitti-train-00000{i}.tar" for i in range(3)]
    check_set(url)
    names = sorted(p.rsplit("/", 1)[1] for p in fsspec.filesystem("s3").ls(url.removeprefix("s3://"), refresh=True))
    assert "_parts" not in names and names[-1] == "summary.json" and len(names) == 3 * 2 + 3


@pytest.mark.s3
def test_s3_input_and_crash_mid_upload(kitti_tree, s3_bucket):
    fs = fsspec.filesystem("s3")
    src = f"{s3_bucket}/raw"
    fs.put(kitti_tree + "/", src.removeprefix("s3://") + "/", recursive=True)
    out = f"{s3_bucket}/shards/crash"
    args = ["--no-ray", "--dataset", "kitti", "--input", src, "--output", out, "--size", "32x16",
            "--samples-per-shard", "5"]
    proc = run_cli(*args, env={"RMDEPTH_FAULT": "point=mid_tar,at=1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    fs.invalidate_cache()
    tars = fs.glob(out.removeprefix("s3://") + "/*.tar")
    assert len(tars) == 1  # shard 0 done; shard 1's multipart upload never completed, so it is invisible
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    summary = read_shard_set(out)
    assert summary.num_samples == 12 and summary.extra["num_reused_shards"] == 1
    keys = [r["key"] for r in read_manifest(out).to_pylist()]
    assert len(set(keys)) == 12
    metas = check_set(out)
    assert all(m["sources"][0].startswith(src) for m in metas.values())


@pytest.mark.ray
@pytest.mark.s3
def test_ray_job_attaches_and_matches_serial(kitti_tree, tmp_path, s3_bucket, ray_local):
    from jobs.preprocess import preprocess

    serial = build_shard_set(_cfg(kitti_tree, samples_per_shard=2), str(tmp_path / "serial"), run_tasks=run_serial,
                             **quiet)
    url = f"{s3_bucket}/ray"
    summary = preprocess(_cfg(kitti_tree, samples_per_shard=2), url, use_ray=True, log=lambda m: None)
    assert ray_local.is_initialized()  # attached to the session cluster, did not shut it down
    assert [s.sha256 for s in summary.shards] == [s.sha256 for s in serial.shards] and len(summary.shards) == 6
    check_set(url)
