"""Multi-node elastic training on one machine (ray.cluster_utils.Cluster in a subprocess with its own
RAY_TMPDIR, so that it never meets the session's or other users' Ray instances): elastic (1, 2) workers on two nodes; a node is removed mid-run -> training continues at
world size 1 from the latest checkpoint; the node is added back -> the group grows to 2 again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.train.conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_elastic_scale_down_and_up(shard_sets, tmp_path):
    ray_tmp = tempfile.mkdtemp(prefix="rmdel-", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.train.elastic_script", shard_sets["train"], shard_sets["val"], str(tmp_path)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )
    finally:
        _kill_leftovers(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result line\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1])
    # (the script may exit non-zero while tearing down: its training thread is still inside fit())
    assert out["error"] is None, f"{out}\n{proc.stderr[-3000:]}"
    events = out["events"]  # (checkpoint name, world size, step) in the order they appeared
    print("checkpoints (name, world size, step):", events, "timeline (s):", out["timeline"])
    sizes = [e[1] for e in events]
    first_one = sizes.index(1)
    assert 2 in sizes[:first_one] and 2 in sizes[first_one:], sizes  # 2 -> 1 -> 2
    # the smaller group resumed from a checkpoint written by the larger one (not from scratch)
    resumed_from = events[first_one][2] - 1  # one optimizer step per epoch, a checkpoint per epoch
    assert resumed_from >= 1 and any(e[1] == 2 and e[2] == resumed_from for e in events[:first_one]), events
    # ...and the regrown group resumed from one written at world size 1
    back = next(i for i in range(first_one, len(events)) if events[i][1] == 2)
    assert any(e[1] == 1 and e[2] == events[back][2] - 1 for e in events[first_one:back]), events


def _kill_leftovers(marker: str) -> None:
    """End the processes of the test's own cluster (their command lines name its private RAY_TMPDIR), by PID."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().decode(errors="replace")
        except OSError:
            continue
        if marker in cmd or f"RAY_TMPDIR={marker}" in env:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
