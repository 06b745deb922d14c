"""Local Ray clusters started by rmdepth jobs do not outlive them: SIGTERM runs the shutdown, and what a kill -9
leaves is stopped by the next job's ray_session (jobs/ray_cluster.py). Real Ray, in child processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from jobs import ray_cluster

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A job that starts a local cluster, says its recorded Ray pids, then waits to be signalled.
JOB = r"""
import json, os, sys, time
from jobs.ray_cluster import SESSIONS_DIR, ray_session
with ray_session(num_cpus=1):
    record = json.load(open(os.path.join(SESSIONS_DIR, f"{os.getpid()}.json")))
    print(json.dumps(record["pids"]), flush=True)
    time.sleep(300)
"""


def _start_job() -> tuple[subprocess.Popen, list[int]]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", JOB], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the job did not start its cluster"
    pids = json.loads(line)
    assert pids and all(psutil.pid_exists(p) for p in pids)
    return proc, pids


def _gone(pids: list[int], timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids):
            return True
        time.sleep(0.5)
    return False


@pytest.mark.timeout(240)
def test_sigterm_stops_the_cluster_the_job_started():
    proc, pids = _start_job()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert _gone(pids)
    assert not os.path.exists(os.path.join(ray_cluster.SESSIONS_DIR, f"{proc.pid}.json"))


@pytest.mark.timeout(240)
def test_the_next_job_stops_what_a_killed_job_left(capsys):
    proc, pids = _start_job()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(1.0)
    left = [p for p in pids if psutil.pid_exists(p)]
    assert left  # kill -9 runs nothing: its Ray processes are still there
    assert ray_cluster.stop_leftovers() >= 1
    assert _gone(pids)
    assert f"left by an rmdepth job (pid {proc.pid}) that was killed" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(ray_cluster.SESSIONS_DIR, f"{proc.pid}.json"))
