"""Learning test: the tiny_cpu preset on a synthetic KITTI world lowers validation AbsRel well below the
median-scaled constant-depth baseline and recovers the camera motion (pose ATE far below a standing camera's,
translation pointing the right way), validated on drives rendered with another seed. Prints the figures.

Runs the real loop (LocalRuntime, no Ray) for 3 of tiny_cpu's 12 epochs (300 steps; the object-motion burn-in,
a fraction of the run, follows). The full multi-seed table is benchmarks/bench_learning.py's.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.train.conftest import _cli

pytestmark = pytest.mark.slow


def _world(root: str) -> dict[str, str]:
    out = {"train": os.path.join(root, "train"), "val": os.path.join(root, "val")}
    _cli("jobs.synth", "kitti", os.path.join(root, "w_train"), "--drives", "4", "--frames", "60", "--size", "208x64",
         "--seed", "21", "--quiet")
    _cli("jobs.synth", "kitti", os.path.join(root, "w_val"), "--drives", "2", "--frames", "12", "--size", "208x64",
         "--seed", "22", "--first-drive", "10", "--quiet")
    _cli("jobs.preprocess", "--dataset", "kitti", "--input", os.path.join(root, "w_train"), "--output", out["train"],
         "--size", "208x64", "--samples-per-shard", "64", "--no-ray")
    _cli("jobs.preprocess", "--dataset", "kitti", "--input", os.path.join(root, "w_val"), "--output", out["val"],
         "--eval", "--cameras", "02", "--size", "208x64", "--no-ray")
    out["pose_val"] = os.path.join(root, "pose_val")
    _cli("jobs.preprocess", "--dataset", "kitti", "--input", os.path.join(root, "w_val"), "--output", out["pose_val"],
         "--cameras", "02", "--size", "208x64", "--no-ray")
    return out


def test_tiny_cpu_beats_constant_depth(tmp_path):
    from configs.presets import tiny_cpu
    from engine.checkpoint import read_identity
    from engine.config_io import apply_overrides
    from engine.data import build_loaders
    from engine.runtime import LocalRuntime
    from engine.trainer import fit

    data = _world(str(tmp_path))
    cfg = apply_overrides(tiny_cpu(), [f"data.train_url={data['train']}", f"data.val_url={data['val']}",
                                       f"data.pose_val_url={data['pose_val']}", "train.epochs=3"])
    rt = LocalRuntime(str(tmp_path / "run"), keep_top_k=cfg.checkpoint.keep_top_k)
    t0 = time.time()
    res = fit(cfg, rt, loaders=build_loaders, run_name="learn", tensorboard_dir=str(tmp_path / "tb"))
    minutes = (time.time() - t0) / 60
    rows = [(v["step"], v["val_abs_rel"], v["val_a1"], v["val_baseline_abs_rel"], v["val_baseline_a1"]) for v in res.val_history]
    for step, ar, a1, bar, ba1 in rows:
        print(f"step {step}: val abs_rel {ar:.4f} a1 {a1:.3f} | constant-depth baseline abs_rel {bar:.4f} a1 {ba1:.3f}")
    best = min(rows, key=lambda r: r[1])
    print(f"tiny_cpu: best val AbsRel {best[1]:.4f} at step {best[0]} vs constant baseline {best[3]:.4f} "
          f"({best[1] / best[3]:.2f}x) in {minutes:.1f} min")
    assert best[1] < 0.6 * best[3], rows
    assert best[2] > best[4] + 0.2, rows  # and many more pixels within 1.25x of the truth
    last = res.val_history[-1]
    assert last["val_abs_rel"] < 1.3 * best[1], rows  # no divergence
    print(f"pose (last validation): ATE {last['val_pose_ate']:.4f} vs standing camera "
          f"{last['val_pose_ate_zero_motion']:.4f}, direction cosine {last['val_pose_cosine']:.4f}, spread "
          f"{last['val_pose_spread']:.3f}")
    assert last["val_pose_ate"] < 0.2 * last["val_pose_ate_zero_motion"]
    assert last["val_pose_cosine"] > 0.95 and last["val_pose_spread"] > 0.005  # forward, and not a constant
    # the kept "best" checkpoint is the one with the lowest val AbsRel
    assert read_identity(rt.best_checkpoint_url())["metrics"]["val_abs_rel"] == pytest.approx(best[1])
