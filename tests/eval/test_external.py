"""`rmdepth eval --predictions ... --gt ...` end to end through the CLI (monodepth2 --ext_disp_to_eval)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.evaluate import evaluate_predictions, make_protocol
from engine.map_files import load_map_list
from jobs.cli import main
from model.metrics import METRIC_NAMES


def _world(rng, n=4):
    gts, disps = [], []
    for i in range(n):
        h, w = (375, 1242) if i % 2 else (370, 1226)  # ragged sizes, as the real Eigen GT
        gt = np.zeros((h, w), np.float32)
        m = rng.random((h, w)) < 0.05
        gt[m] = rng.uniform(1, 79, m.sum())
        gts.append(gt)
        disps.append(rng.uniform(0.02, 1.0, (96, 320)).astype(np.float32))
    return gts, disps


def test_cli_external_predictions_writes_json(tmp_path):
    rng = np.random.default_rng(0)
    gts, disps = _world(rng)
    gt_path = tmp_path / "gt_depths.npz"
    np.savez(gt_path, **{f"{i:06d}": g for i, g in enumerate(gts)})  # ragged-safe: one key per frame
    pred_path = tmp_path / "disps.npy"
    np.save(pred_path, np.stack(disps))
    out_json = tmp_path / "m.json"
    rc = main(["eval", "--predictions", str(pred_path), "--gt", str(gt_path), "--protocol", "kitti-eigen",
               "--json", str(out_json), "--out", str(tmp_path / "rep")])
    assert rc == 0
    got = json.loads(out_json.read_text())
    assert list(got) == list(METRIC_NAMES)
    ref, _ = evaluate_predictions(disps, gts, make_protocol("kitti-eigen"))
    assert got == pytest.approx(ref)
    assert (tmp_path / "rep" / "report.md").exists() and (tmp_path / "rep" / "per_image.parquet").exists()
    # the same predictions given as depth give other numbers than as disparity
    np.save(pred_path, 1.0 / np.stack(disps))
    rc = main(["eval", "--predictions", str(pred_path), "--gt", str(gt_path), "--pred-type", "depth",
               "--json", str(out_json)])
    assert rc == 0
    got_depth = json.loads(out_json.read_text())
    ref_depth, _ = evaluate_predictions([1.0 / d for d in disps], gts, make_protocol("kitti-eigen"), pred_type="depth")
    assert got_depth == pytest.approx(ref_depth)
    assert got_depth["abs_rel"] != pytest.approx(got["abs_rel"])  # depth is resized as depth, not as disparity


def test_monodepth2_object_array_needs_allow_pickle(tmp_path):
    rng = np.random.default_rng(1)
    gts, disps = _world(rng, n=2)
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = gts
    gt_path = tmp_path / "gt_depths.npz"
    np.savez_compressed(gt_path, data=arr)
    with pytest.raises(ValueError, match="--allow-pickle"):
        load_map_list(str(gt_path), what="ground truth")
    loaded = load_map_list(str(gt_path), what="ground truth", allow_pickle=True)
    assert [g.shape for g in loaded] == [g.shape for g in gts]


def test_cli_errors_are_one_line(tmp_path):
    pred = tmp_path / "p.npy"
    np.save(pred, np.ones((3, 4, 5), np.float32))
    gt = tmp_path / "gt.npz"
    np.savez(gt, data=np.ones((2, 8, 10), np.float32))
    r = subprocess.run([sys.executable, "-m", "jobs", "eval", "--predictions", str(pred), "--gt", str(gt)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "3 predictions" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "jobs", "eval", "--predictions", str(tmp_path / "missing.npy"),
                        "--gt", str(gt)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "missing.npy" in r.stderr
    r = subprocess.run([sys.executable, "-m", "jobs.evaluate", "--predictions", str(pred)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--gt" in r.stderr
