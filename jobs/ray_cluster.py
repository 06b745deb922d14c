"""The one place that connects to or starts Ray for the jobs (and stops what it started).

A local cluster started here stops with the block that started it: on a normal end, an exception, Ctrl-C and
SIGTERM (turned into an exit that runs the shutdown). A `kill -9` of the job cannot run anything: its Ray processes
(gcs_server, raylet, workers) keep running. So every local cluster records the processes it started in
`<tmp>/rmdepth-ray-sessions/<job pid>.json`, and the next `ray_session` of any rmdepth job stops the processes
recorded by jobs that are no longer alive (only those: recorded pids that still run a Ray program), and says so in
one line. Nothing else is touched; clusters started by `ray start` or other programs are never stopped here.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SESSIONS_DIR = os.path.join(tempfile.gettempdir(), "rmdepth-ray-sessions")


@contextmanager
def ray_session(*, num_cpus: int | None = None, address: str | None = None, log_to_driver: bool = False,
                **init_kwargs: Any) -> Iterator[None]:
    """Use the Ray this process is already connected to; else connect to `address` / $RAY_ADDRESS (e.g. under
    `ray job submit`); else start a local cluster with `num_cpus` CPUs for the duration of the block. Whatever this
    call started or connected is shut down when the block ends, also when it ends with an exception or SIGTERM."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": log_to_driver, "configure_logging": False}
    if address is None:
        stop_leftovers()
        kwargs.update(num_cpus=num_cpus, include_dashboard=False,
                      _temp_dir=tempfile.mkdtemp(prefix="rmdepth-ray-", dir="/tmp"))
    ray.init(**{**kwargs, **init_kwargs})
    record = _record_session() if address is None else None
    try:
        with _sigterm_exits():  # after ray.init, which installs a handler of its own
            yield
    finally:
        ray.shutdown()
        if record:
            _remove(record)


@contextmanager
def task_errors_in_one_line(what: str) -> Iterator[None]:
    """A Ray task that raised (a bad input, an S3 endpoint gone) becomes one JobError line: `what: <the task's own
    message>` instead of Ray's multi-page RayTaskError (the full chain stays attached, for RMDEPTH_DEBUG=1)."""
    import ray

    from jobs.errors import JobError

    try:
        yield
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        text = str(cause) if isinstance(cause, BaseException) else ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()] or [type(cause or e).__name__]
        raise JobError(f"{what}: {lines[0]}") from e


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) in the main thread, so `finally` blocks (the Ray shutdown) run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _record_session() -> str:
    """Write the pids of the Ray processes this job started (its descendants now) to the sessions folder."""
    import psutil

    pids = [p.pid for p in psutil.Process().children(recursive=True)]
    os.makedirs(SESSIONS_DIR, exist_ok=True)
    path = os.path.join(SESSIONS_DIR, f"{os.getpid()}.json")
    with open(path, "w") as f:
        json.dump({"owner": os.getpid(), "pids": pids}, f)
    return path


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def stop_leftovers() -> int:
    """Stop the Ray processes recorded by rmdepth jobs that died without shutting their cluster down (kill -9).
    Returns how many were stopped."""
    import psutil

    if not os.path.isdir(SESSIONS_DIR):
        return 0
    stopped = 0
    for name in sorted(os.listdir(SESSIONS_DIR)):
        path = os.path.join(SESSIONS_DIR, name)
        try:
            with open(path) as f:
                record = json.load(f)
            owner, pids = int(record["owner"]), [int(p) for p in record["pids"]]
        except (OSError, ValueError, KeyError, TypeError):
            _remove(path)
            continue
        if psutil.pid_exists(owner):
            continue  # a job still running (or its pid reused): leave it alone
        procs = [p for p in (_ray_process(pid) for pid in pids) if p is not None]
        for p in procs:
            p.terminate()
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            p.kill()
        stopped += len(procs)
        if procs:
            print(f"rmdepth: stopped {len(procs)} Ray processes left by an rmdepth job (pid {owner}) that was killed",
                  flush=True)
        _remove(path)
    return stopped


def _ray_process(pid: int):
    """The process `pid` if it is still running a Ray program (its command line names ray), else None."""
    import psutil

    try:
        p = psutil.Process(pid)
        return p if "ray" in " ".join(p.cmdline()).lower() else None
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
