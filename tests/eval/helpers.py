"""Test helpers: real checkpoints of a freshly initialised RM-Depth net (engine.checkpoint.save_checkpoint) and a
synthetic KITTI eval shard set (rmdepth synth + rmdepth shard --eval)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_checkpoint(directory: str, *, step: int, seed: int = 0, run_name: str = "tiny", small: bool = True) -> str:
    """A complete checkpoint of a freshly initialised net (tiny_cpu preset; `small` shrinks the depth net's widths
    and RMU steps so CPU tests stay fast; the stored config describes the net exactly)."""
    from dataclasses import replace

    from configs.presets import get_preset
    from engine.checkpoint import TrainPosition, save_checkpoint
    from engine.config_io import to_json
    from engine.rng import capture_rng_state
    from model.nets import build_nets

    cfg = get_preset("tiny_cpu")
    if small:
        cfg = replace(cfg, depth=replace(cfg.depth, encoder_channels=(8, 8, 16, 16, 24, 32), init_channels=16,
                                         rmu_steps=(2, 1, 1)))
    torch.manual_seed(seed)
    nets = build_nets(cfg.depth, cfg.motion)
    optimizer = torch.optim.Adam(nets.parameters(), lr=1e-4)
    save_checkpoint(
        directory,
        nets=nets,
        optimizer=optimizer,
        scheduler_state={},
        position=TrainPosition(step=step, epoch=step // 100, samples_seen=step * 4),
        rng_states=[capture_rng_state()],
        config_json=to_json(cfg),
        identity={"run_name": run_name, "seed": seed},
    )
    return directory


def rmdepth(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "jobs", *argv], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if r.returncode != 0:
        raise AssertionError(f"rmdepth {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def make_eval_shards(root: str, *, frames: int = 7, drives: int = 2, per_shard: int = 4) -> str:
    """Synthetic KITTI world -> eval shard set (drives x frames test frames, the last shard partly filled)."""
    raw, shards = os.path.join(root, "raw"), os.path.join(root, "shards")
    rmdepth("synth", "kitti", raw, "--drives", str(drives), "--frames", str(frames), "--size", "416x128", "--quiet")
    rmdepth("shard", "--dataset", "kitti", "--input", raw, "--output", shards, "--eval", "--no-ray", "--size", "208x64",
            "--samples-per-shard", str(per_shard), "--cameras", "02")
    return shards
