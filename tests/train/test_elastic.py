"""Multi-node elastic training on one machine (ray.cluster_utils.Cluster in a subprocess with its own
RAY_TMPDIR, so that it never meets the session's or other users' Ray instances): elastic (1, 2) workers on two nodes; a node is removed mid-run -> training continues at
world size 1 from the latest checkpoint; the node is added back -> the group grows to 2 again."""

from __future__ import annotations

import json
import os
import shutil
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
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result line\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1])
    assert proc.returncode == 0 and out["error"] is None, f"{out}\n{proc.stderr[-3000:]}"
    sizes = out["world_sizes"]
    print("checkpoint world sizes:", sizes, "timeline (s):", out["timeline"])
    first_one = sizes.index(1)
    assert 2 in sizes[:first_one] and 2 in sizes[first_one:], sizes  # 2 -> 1 -> 2
