"""Fixtures for the shard-job tests: tiny hand-made trees in the real KITTI / Cityscapes formats."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.shards.handmade import make_cityscapes, make_kitti

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def kitti_tree(tmp_path_factory) -> str:
    """2 drives x 2 cameras x 5 frames of 62x19 noise images, calibration, oxts (vf 5 on even frames), velodyne."""
    root = str(tmp_path_factory.mktemp("kitti") / "raw")
    make_kitti(root)
    return root


@pytest.fixture(scope="session")
def cs_tree(tmp_path_factory) -> str:
    """Cityscapes train/aachen: 2 snippets x 7 frames of 64x32, camera json + disparity for the middle frame."""
    root = str(tmp_path_factory.mktemp("cityscapes") / "cs")
    make_cityscapes(root)
    return root


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m jobs.preprocess ARGS` (or another module given as args[0] starting with 'jobs.')."""
    module = args[0] if args and args[0].startswith("jobs.") else "jobs.preprocess"
    rest = args[1:] if args and args[0].startswith("jobs.") else args
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *rest], cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def synth(dataset: str, out: str, *args: str) -> str:
    """Render a synthetic world with the real CLI (`python -m jobs.synth`), fail loudly if it fails."""
    proc = subprocess.run([sys.executable, "-m", "jobs.synth", dataset, out, "--quiet", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def synth_kitti(tmp_path_factory) -> str:
    """Synthetic KITTI raw: 2 drives x 6 frames, stereo, 208x64, velodyne + oxts + rmdepth_truth."""
    return synth("kitti", str(tmp_path_factory.mktemp("synth") / "kitti"), "--drives", "2", "--frames", "6",
                 "--size", "208x64", "--seed", "3")


@pytest.fixture(scope="session")
def synth_kitti_faulty(tmp_path_factory) -> str:
    """3 drives x 5 frames with a corrupt PNG (drive 1 frame 2, image_02), a 0-byte velodyne (drive 2 frame 1)
    and a short drive (drive 3: 2 frames)."""
    return synth("kitti", str(tmp_path_factory.mktemp("synth") / "kitti_faulty"), "--drives", "3", "--frames", "5",
                 "--size", "64x24", "--seed", "4", "--fault", "corrupt-png:1:2", "--fault", "empty-velodyne:2:1",
                 "--fault", "short-drive:3")


@pytest.fixture(scope="session")
def synth_cityscapes(tmp_path_factory) -> str:
    """Synthetic Cityscapes train: aachen, 2 snippets x 8 frames, 128x64, camera json + disparity + truth."""
    return synth("cityscapes", str(tmp_path_factory.mktemp("synth") / "cs"), "--cities", "aachen", "--sequences", "2",
                 "--frames", "8", "--size", "128x64", "--seed", "5")
