"""Fixtures for the training tests: synthetic KITTI worlds made with the real CLIs (`rmdepth synth`, `rmdepth shard`)
and a small, fast variant of the tiny_cpu preset."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A fast network and input size for loop-mechanics tests (the real nets, made small).
SMALL = [
    "depth.encoder_channels=16,16,24,32,48,64",
    "depth.init_channels=32",
    "depth.rmu_steps=1,1,1",
    "motion.encoder_channels=16,24,32",
    "motion.pose_channels=32",
    "motion.motion_channels=16",
    "loss.num_scales=2",
    "loader.width=104",
    "loader.height=32",
    "loader.batch_size=2",
    "loader.num_workers=0",
    "train.num_threads=1",
    "train.log_every_steps=1",
    "train.image_every_steps=2",
]


def _cli(*args: str, timeout: float = 600) -> None:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}"


def make_shard_sets(root: str, *, train_frames: int = 20, val_frames: int = 8, size: str = "208x64") -> dict[str, str]:
    """Train (triplets) and val (eval frames + gt.npy) shard sets from two synthetic KITTI worlds (other seeds)."""
    out = {"train": os.path.join(root, "train"), "val": os.path.join(root, "val")}
    _cli("jobs.synth", "kitti", os.path.join(root, "w_train"), "--drives", "2", "--frames", str(train_frames),
         "--size", size, "--seed", "11", "--quiet")
    _cli("jobs.synth", "kitti", os.path.join(root, "w_val"), "--drives", "1", "--frames", str(val_frames),
         "--size", size, "--seed", "12", "--quiet")
    _cli("jobs.preprocess", "--dataset", "kitti", "--input", os.path.join(root, "w_train"), "--output", out["train"],
         "--size", size, "--samples-per-shard", "16", "--no-ray")
    _cli("jobs.preprocess", "--dataset", "kitti", "--input", os.path.join(root, "w_val"), "--output", out["val"],
         "--eval", "--cameras", "02", "--size", size, "--no-ray")
    return out


@pytest.fixture(scope="session")
def shard_sets(tmp_path_factory) -> dict[str, str]:
    return make_shard_sets(str(tmp_path_factory.mktemp("train_data")))


def small_config(shard_sets: dict[str, str], *extra: str):
    from configs.presets import tiny_cpu
    from engine.config_io import apply_overrides

    return apply_overrides(
        tiny_cpu(),
        [f"data.train_url={shard_sets['train']}", f"data.val_url={shard_sets['val']}", *SMALL, *extra],
    )


def run_private_cluster_script(module: str, *args: str, prefix: str, timeout: float) -> tuple[dict, str]:
    """Run `python -m module args` (a script that starts its own ray.cluster_utils.Cluster) with a private RAY_TMPDIR,
    so that it never meets the session's or other users' Ray instances; end its leftover processes by PID afterwards.
    Returns (its last JSON stdout line, its stdout)."""
    ray_tmp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": ray_tmp}
    for name in ("RAY_ADDRESS", "RMDEPTH_FAULT"):
        env.pop(name, None)
    try:
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        _kill_leftovers(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result line\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1])
    # (the script may exit non-zero while tearing down: its training thread can still be inside fit())
    assert out["error"] is None, f"{out}\n{proc.stderr[-3000:]}"
    return out, proc.stdout


def _kill_leftovers(marker: str) -> None:
    """End the processes of a test's own cluster (their command lines name its private RAY_TMPDIR), by PID."""
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
