"""Scores only synthetic worlds give (engine.synth_eval): dense depth error split by the truth's moving mask, and pose
quality against the exact camera motion."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.synth_eval import dense_depth_sums, evaluate_synthetic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _scene(h: int = 40, w: int = 120):
    gt = np.tile(np.linspace(40.0, 5.0, h)[:, None], (1, w)).astype(np.float32)
    sky = np.zeros((h, w), bool)
    sky[:4] = True
    gt[sky] = 1000.0
    moving = np.zeros((h, w), bool)
    moving[25:35, 50:70] = True
    return gt, moving, sky


def test_dense_errors_are_median_scaled_and_split_by_the_moving_mask():
    gt, moving, sky = _scene()
    exact = dense_depth_sums(torch.from_numpy(gt * 3.0), gt, moving, sky)  # any global scale is free
    assert exact["static_sum"] < 1e-3 * exact["static_n"] and exact["moving_sum"] < 1e-3 * exact["moving_n"]
    assert exact["moving_n"] > 0 and exact["static_n"] > 0
    wrong = gt.copy()
    wrong[moving] *= 2.0  # moving cars twice too far, the rest exact
    sums = dense_depth_sums(torch.from_numpy(wrong), gt, moving, sky)
    from engine.evaluate import GARG_CROP

    h, w = gt.shape
    crop = np.zeros_like(moving)
    crop[int(GARG_CROP[0] * h) : int(GARG_CROP[1] * h), int(GARG_CROP[2] * w) : int(GARG_CROP[3] * w)] = True
    valid = ~sky & crop
    r = np.median(gt[valid]) / np.median(wrong[valid])  # the per-image median scaling
    assert math.isclose(sums["static_sum"] / sums["static_n"], abs(1 - r), rel_tol=1e-3, abs_tol=1e-6)
    assert math.isclose(sums["moving_sum"] / sums["moving_n"], abs(1 - 2 * r), rel_tol=1e-3)


def test_dense_errors_resize_the_prediction_to_the_truth():
    gt, moving, sky = _scene(40, 120)
    small = torch.nn.functional.interpolate(torch.from_numpy(1.0 / gt)[None, None], size=(20, 60), mode="bilinear",
                                            align_corners=False)[0, 0]
    sums = dense_depth_sums(1.0 / small, gt, moving, sky)
    assert sums["static_sum"] / sums["static_n"] < 0.02


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("synth") / "kitti")
    proc = subprocess.run([sys.executable, "-m", "jobs.synth", "kitti", out, "--quiet", "--drives", "1", "--frames",
                           "7", "--size", "208x64", "--seed", "4", "--no-stereo", "--no-velodyne"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_evaluate_synthetic_scores_a_network_end_to_end(tiny_world):
    from configs.presets import tiny_cpu
    from model.nets import build_nets

    cfg = tiny_cpu()
    torch.manual_seed(0)
    nets = build_nets(cfg.depth, cfg.motion)
    m = evaluate_synthetic(nets, tiny_world, size_wh=(104, 32), batch_size=3)
    for key in ("dense_abs_rel_static", "pose_ate", "pose_ate_zero_motion", "pose_cosine", "pose_rotation_error_deg"):
        assert math.isfinite(m[key]), key
    assert m["pose_snippets"] == 6  # 7 frames: snippets start at frames 0..5
    assert nets.training  # the caller's mode is restored
    # the forward-motion prior alone already beats a standing camera on a straight drive
    assert m["pose_ate"] < m["pose_ate_zero_motion"]
