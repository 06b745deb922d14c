"""Shared fixtures: a real S3 protocol (moto server on 127.0.0.1 in a subprocess) and a real local Ray cluster.

Ray clusters are started and stopped through ray.init/ray.shutdown in their own temp dir, never with `ray stop`.
"""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def s3_server():
    """Start moto in a subprocess (DALI's S3 client holds the GIL, so never in-process) and export S3 env vars.

    Yields the endpoint URL. The variables stay set for the whole session so that Ray workers started later inherit
    them.
    """
    from jobs.local_s3 import LocalS3

    server = LocalS3().start()
    yield server.endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh bucket on the moto server; yields its URL `s3://<name>`."""
    import boto3
    import fsspec

    name = f"rmd-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
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
