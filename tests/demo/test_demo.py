"""The demo flow at its smallest settings, through s3:// URLs on a local moto server (the `--s3` variant):
synth -> shards (Ray tasks) -> Ray Train (2 workers, DALI CPU) -> distributed eval -> report with numbers."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.s3
def test_demo_quick_s3_writes_a_report_with_numbers(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1")
    for k in [k for k in env if k.startswith("AWS_")]:  # the demo starts its own S3 server
        env.pop(k)
    workdir = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-m", "jobs", "demo", "--quick", "--s3", "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=1200, env=env,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for stage in ("[1/7] synthesize", "[2/7] shard", "[3/7] train", "[4/7] evaluate", "[5/7] pose", "[6/7] pictures",
                  "[7/7] report"):
        assert stage in r.stdout
    report = (workdir / "report.md").read_text()
    assert "s3://rmdepth-demo/" in report
    assert "| RM-Depth (this run) |" in report and "| constant depth, median-scaled |" in report
    assert (workdir / "report.html").stat().st_size > 1000
    assert "Ego-motion on the test drive" in report and "| ATE, 5-frame snippets (m) |" in report
    assert "Depth on moving objects" in report
    for image in ("pictures.png", "loss_curve.png", "trajectory.png"):
        assert (workdir / image).stat().st_size > 1000, image
    summary = json.loads((workdir / "demo.json").read_text())
    for name in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"):
        assert math.isfinite(summary["metrics"][name]) and math.isfinite(summary["baseline"][name])
    assert summary["num_test_frames"] > 0
    pose = summary["pose"]["metrics"]
    assert math.isfinite(pose["ate_mean"]) and summary["pose"]["baseline"]["ate_mean"] > 0
    assert math.isfinite(summary["moving_objects"]["dense_abs_rel_static"])
    assert all(url.startswith("s3://rmdepth-demo/shards/") for url in summary["shards"].values())
