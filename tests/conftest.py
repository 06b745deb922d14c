"""Shared fixtures: a real S3 protocol (moto server on 127.0.0.1 in a subprocess) and a real local Ray cluster.

Ray clusters are started and stopped through ray.init/ray.shutdown in their own temp dir, never with `ray stop`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("TQDM_DISABLE", "1")

_MOTO_SCRIPT = (
    "import sys, time\n"
    "from moto.server import ThreadedMotoServer\n"
    "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "s.start()\n"
    "print(s.get_host_and_port()[1], flush=True)\n"
    "sys.stdin.read()\n"  # exit when the parent closes our stdin (or dies)
)


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"moto server did not open port {port}")


@pytest.fixture(scope="session")
def s3_server():
    """Start moto in a subprocess (DALI's S3 client holds the GIL, so never in-process) and export S3 env vars.

    Yields the endpoint URL. The variables stay set for the whole session so that Ray workers started later inherit
    them.
    """
    proc = subprocess.Popen([sys.executable, "-c", _MOTO_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().strip())
    _wait_port(port)
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    os.environ.pop("AWS_PROFILE", None)
    yield endpoint
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.stdin.close()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket on the moto server; yields its URL `s3://<name>`."""
    import boto3

    name = f"rmd-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    import fsspec

    fsspec.filesystem("s3").invalidate_cache()
    yield f"s3://{name}"


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """A local Ray cluster (2 CPUs) for the whole session, with the S3 env inherited by its workers."""
    import ray

    tmp = tempfile.mkdtemp(prefix="rmdray-", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
