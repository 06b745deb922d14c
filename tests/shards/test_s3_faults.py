"""S3 faults on a real protocol: a moto server behind a TCP proxy (tests/flaky_proxy.py) that drops connections,
answers 503 SlowDown, or stops. Dropped connections are retried (pipeline/storage.py) and the shard set is
byte-identical to a local one; a stopped endpoint ends the command with one line naming the URL, exit 1, and no
half-written shard counts as complete."""

from __future__ import annotations

import logging

import pytest
import s3fs

from pipeline import storage
from pipeline.shards import IncompleteShardSetError, iter_samples, read_manifest, read_shard_set
from pipeline.shards.build import build_shard_set, run_serial
from pipeline.shards.config import ShardConfig
from tests.flaky_proxy import FlakyProxy
from tests.shards.checks import check_set
from tests.shards.conftest import run_cli

quiet = {"log": lambda m: None}
# moto closes every connection after its answer, so connection n is the client's n-th request (or reconnect); one
# try of a storage call makes up to 3, so faults 4 apart cost at most one retry per call, well inside the 4 tries
PLAN = {0: "reset", 4: "503", 8: "cut", 12: "reset", 16: "503", 20: "cut", 24: "reset", 28: "cut"}


def _cfg(root: str, **kw) -> ShardConfig:
    return ShardConfig(**{"dataset": "kitti", "input": root, "width": 32, "height": 16, "samples_per_shard": 2, **kw})


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


@pytest.fixture
def through(monkeypatch, s3_server):
    """`through(proxy)`: this process's S3 clients go through the proxy from now on (the moto server afterwards)."""
    monkeypatch.setenv(storage.ATTEMPTS_ENV, "4")
    monkeypatch.setenv(storage.DELAY_ENV, "0.01")

    def use(endpoint: str) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        s3fs.S3FileSystem.clear_instance_cache()  # a cached client keeps the endpoint it was made with

    yield use
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.s3
def test_dropped_connections_are_retried_and_nothing_is_lost_or_doubled(kitti_tree, tmp_path, s3_bucket, s3_server,
                                                                         through, caplog):
    local = build_shard_set(_cfg(kitti_tree), str(tmp_path / "local"), run_tasks=run_serial, **quiet)
    url = f"{s3_bucket}/shards/kitti-train"
    with FlakyProxy(_port(s3_server), plan=PLAN) as proxy, caplog.at_level(logging.WARNING, "pipeline.storage"):
        through(proxy.endpoint)
        remote = build_shard_set(_cfg(kitti_tree), url, run_tasks=run_serial, **quiet)
    assert sorted(proxy.broken) == sorted(PLAN)  # every planned fault happened
    retries = [r.getMessage() for r in caplog.records]
    assert retries and all(m.startswith(f"{url}/") and " failed, retrying in " in m for m in retries), retries
    through(s3_server)
    assert [(s.name, s.sha256, s.num_samples) for s in remote.shards] == [
        (s.name, s.sha256, s.num_samples) for s in local.shards]
    assert remote.num_samples == local.num_samples == 12
    keys = [r["key"] for r in read_manifest(url).to_pylist()]
    assert sorted(keys) == sorted(r["key"] for r in read_manifest(str(tmp_path / "local")).to_pylist())
    assert len(set(keys)) == len(keys) == 12
    check_set(url)  # hashes, DALI indexes and contents of every shard, read directly from moto

    # reading the set back through dropped connections (and a throttling answer) gives the same bytes
    with FlakyProxy(_port(s3_server), plan=PLAN) as proxy:
        through(proxy.endpoint)
        read_back = list(iter_samples(url))
    assert proxy.broken
    assert read_back == list(iter_samples(str(tmp_path / "local")))


@pytest.mark.s3
def test_stopped_endpoint_mid_run_is_one_line_and_a_rerun_completes(kitti_tree, tmp_path, s3_bucket, s3_server,
                                                                    through):
    out = f"{s3_bucket}/shards/stopped"
    tar2 = f"{out}/kitti-train-000002.tar"
    args = ["--no-ray", "--dataset", "kitti", "--input", kitti_tree, "--output", out, "--size", "32x16",
            "--samples-per-shard", "2"]
    env = {storage.ATTEMPTS_ENV: "3", storage.DELAY_ENV: "0.05"}
    request_line = f"PUT /{tar2.removeprefix('s3://')} ".encode()
    with FlakyProxy(_port(s3_server), stop_on=request_line) as proxy:  # stops as shard 2's tar upload starts
        proc = run_cli(*args, env={**env, "AWS_ENDPOINT_URL": proxy.endpoint})
    assert proxy.stopped_on_request
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("jobs.preprocess: error: ") and tar2 in lines[-1], lines
    assert lines[-1].endswith("(gave up after 3 attempts)"), lines[-1]
    assert [ln.split(";")[1] for ln in lines[:-1] if ln.startswith(tar2)] == [
        " attempt 1 of 3 failed, retrying in 0.05 s", " attempt 2 of 3 failed, retrying in 0.10 s"]

    # seen directly on the server: shards 0 and 1 complete, shard 2's tar absent, no summary: the set is incomplete
    names = storage.listdir(out)
    assert "kitti-train-000001.tar" in names and "kitti-train-000002.tar" not in names
    assert "summary.json" not in names
    with pytest.raises(IncompleteShardSetError, match="incomplete shard set"):
        read_shard_set(out)

    proc = run_cli(*args, env=env)  # the endpoint is back
    assert proc.returncode == 0, proc.stderr
    summary = read_shard_set(out)
    local = build_shard_set(_cfg(kitti_tree), str(tmp_path / "local"), run_tasks=run_serial, **quiet)
    assert [s.sha256 for s in summary.shards] == [s.sha256 for s in local.shards]
    assert summary.num_samples == 12 and summary.extra["num_reused_shards"] == 2
    check_set(out)


@pytest.mark.s3
def test_stopped_endpoint_before_the_run(kitti_tree, s3_bucket, s3_server):
    proxy = FlakyProxy(_port(s3_server)).start()
    proxy.stop()
    out = f"{s3_bucket}/shards/never"
    args = ["--no-ray", "--dataset", "kitti", "--input", kitti_tree, "--output", out, "--size", "32x16"]
    env = {storage.ATTEMPTS_ENV: "2", storage.DELAY_ENV: "0.01", "AWS_ENDPOINT_URL": proxy.endpoint}
    proc = run_cli(*args, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"jobs.preprocess: error: {out}") and "Could not connect to the endpoint URL" in last
    assert last.endswith("(gave up after 2 attempts)")
    proc = run_cli(*args, env={**env, "RMDEPTH_DEBUG": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "RemoteStorageError" in proc.stderr
    assert storage.listdir(out) == []
