"""Learning test: the tiny_cpu preset on a synthetic KITTI world lowers validation AbsRel well below the
median-scaled constant-depth baseline and recovers the camera motion (pose ATE far below a standing camera's,
translation pointing the right way), validated on drives rendered with another seed. Prints the figures.

Runs the real loop (LocalRuntime, no Ray) for 3 of tiny_cpu's 14 epochs (300 steps; the object-motion burn-in,
a fraction of the run, follows). The full multi-seed table is benchmarks/bench_learning.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.train.conftest import REPO, _cli

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


def _train(data: dict[str, str], root: str) -> dict:
    """The run itself, in a fresh process (python -c, see the test): this pytest process may hold a Ray session
    (the session-wide `ray_local` fixture), and forking the loader's worker processes from a process with Ray's
    threads can abort them."""
    from configs.presets import tiny_cpu
    from engine.checkpoint import read_identity
    from engine.config_io import apply_overrides
    from engine.data import build_loaders
    from engine.runtime import LocalRuntime
    from engine.trainer import fit

    cfg = apply_overrides(tiny_cpu(), [f"data.train_url={data['train']}", f"data.val_url={data['val']}",
                                       f"data.pose_val_url={data['pose_val']}", "train.epochs=3"])
    rt = LocalRuntime(os.path.join(root, "run"), keep_top_k=cfg.checkpoint.keep_top_k)
    res = fit(cfg, rt, loaders=build_loaders, run_name="learn", tensorboard_dir=os.path.join(root, "tb"))
    return {"val_history": res.val_history,
            "best_checkpoint_abs_rel": read_identity(rt.best_checkpoint_url())["metrics"]["val_abs_rel"]}


def test_tiny_cpu_beats_constant_depth(tmp_path):
    data = _world(str(tmp_path))
    t0 = time.time()
    out = tmp_path / "result.json"
    code = (f"import json; from tests.train.test_learning import _train; "
            f"json.dump(_train({data!r}, {str(tmp_path)!r}), open({str(out)!r}, 'w'), default=float)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(out.read_text())
    minutes = (time.time() - t0) / 60
    val_history = result["val_history"]
    rows = [(v["step"], v["val_abs_rel"], v["val_a1"], v["val_baseline_abs_rel"], v["val_baseline_a1"]) for v in val_history]
    for step, ar, a1, bar, ba1 in rows:
        print(f"step {step}: val abs_rel {ar:.4f} a1 {a1:.3f} | constant-depth baseline abs_rel {bar:.4f} a1 {ba1:.3f}")
    best = min(rows, key=lambda r: r[1])
    print(f"tiny_cpu: best val AbsRel {best[1]:.4f} at step {best[0]} vs constant baseline {best[3]:.4f} "
          f"({best[1] / best[3]:.2f}x) in {minutes:.1f} min")
    assert best[1] < 0.6 * best[3], rows
    assert best[2] > best[4] + 0.2, rows  # and many more pixels within 1.25x of the truth
    last = val_history[-1]
    assert last["val_abs_rel"] < 1.3 * best[1], rows  # no divergence
    print(f"pose (last validation): ATE {last['val_pose_ate']:.4f} vs standing camera "
          f"{last['val_pose_ate_zero_motion']:.4f}, direction cosine {last['val_pose_cosine']:.4f}, spread "
          f"{last['val_pose_spread']:.3f}")
    assert last["val_pose_ate"] < 0.2 * last["val_pose_ate_zero_motion"]
    assert last["val_pose_cosine"] > 0.95 and last["val_pose_spread"] > 0.005  # forward, and not a constant
    # the kept "best" checkpoint is the one with the lowest val AbsRel
    assert result["best_checkpoint_abs_rel"] == pytest.approx(best[1])
