"""A local S3-compatible server (moto) on 127.0.0.1 in a subprocess, for the demo's --s3 mode and the tests.

moto runs in its own process because DALI's S3 client holds the GIL while listing (an in-process server starves).
The endpoint and dummy credentials are exported to the environment (AWS_ENDPOINT_URL, ...), which boto3, s3fs,
pyarrow, DALI and Ray workers started afterwards all read. Never used against real S3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

_MOTO_SCRIPT = (
    "import sys\n"
    "from moto.server import ThreadedMotoServer\n"
    "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False)\n"
    "s.start()\n"
    "print(s.get_host_and_port()[1], flush=True)\n"
    "sys.stdin.read()\n"  # exit when the parent closes our stdin (or dies)
)


class LocalS3:
    """Start with `with LocalS3() as s3: ...`; `s3.endpoint` is the URL, `s3.create_bucket(name)` makes a bucket."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self._old_env: dict[str, str | None] = {}

    def start(self) -> LocalS3:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MOTO_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"moto server did not start (got {line!r})")
        port = int(line)
        _wait_port(port)
        self.endpoint = f"http://127.0.0.1:{port}"
        env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        self._old_env = {k: os.environ.get(k) for k in (*env, "AWS_PROFILE")}
        os.environ.update(env)
        os.environ.pop("AWS_PROFILE", None)
        return self

    def create_bucket(self, name: str) -> str:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=name)
        try:
            import fsspec

            fsspec.filesystem("s3").invalidate_cache()
        except ImportError:
            pass
        return f"s3://{name}"

    def stop(self) -> None:
        for k, v in self._old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.proc is not None:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"moto server did not open port {port}")
