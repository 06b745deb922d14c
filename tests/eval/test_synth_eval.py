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
    if math.isfinite(m["dense_abs_rel_moving"]):  # the split covers the moving pixels
        parts = [m["dense_abs_rel_moving_oncoming"], m["dense_abs_rel_moving_same_direction"]]
        assert any(math.isfinite(p) for p in parts)
        lo, hi = min(p for p in parts if math.isfinite(p)), max(p for p in parts if math.isfinite(p))
        assert lo - 1e-9 <= m["dense_abs_rel_moving"] <= hi + 1e-9
    assert m["pose_snippets"] == 6  # 7 frames: snippets start at frames 0..5
    assert nets.training  # the caller's mode is restored
    # the forward-motion prior alone already beats a standing camera on a straight drive
    assert m["pose_ate"] < m["pose_ate_zero_motion"]


def test_object_displacement_moves_cars_along_the_street_in_the_source_camera_axes():
    from engine.synth_eval import object_displacement_3HW

    instance = np.array([[0, 5], [7, 9]])
    yaw = np.deg2rad(30.0)  # source camera turned 30 degrees right of the street
    R_c2w = np.array([[np.cos(yaw), 0.0, np.sin(yaw)], [0.0, 1.0, 0.0], [-np.sin(yaw), 0.0, np.cos(yaw)]])
    d = object_displacement_3HW(instance, {5: 10.0, 7: -4.0}, 0.1, R_c2w)
    assert d.shape == (3, 2, 2)
    assert np.allclose(d[:, 0, 0], 0.0) and np.allclose(d[:, 1, 1], 0.0)  # road and a static object (9)
    assert np.allclose(R_c2w @ d[:, 0, 1], [0.0, 0.0, 1.0])  # 10 m/s for 0.1 s along world Z
    assert np.allclose(R_c2w @ d[:, 1, 0], [0.0, 0.0, -0.4])  # oncoming
    assert np.allclose(object_displacement_3HW(np.full((2, 2), 12), {5: 1.0}, 0.1, R_c2w), 0.0)  # id beyond the table


def test_field_recall_is_the_share_of_the_true_motion_recovered():
    from engine.synth_eval import field_sums

    true = np.zeros((3, 4, 4))
    true[2, :2] = 1.2
    moving = true[2] > 0
    static = ~moving
    for pred, recall in ((true, 1.0), (0.5 * true, 0.5), (np.zeros_like(true), 0.0), (-true, -1.0)):
        s = field_sums(pred, true, moving, static)
        assert math.isclose(s["dot_sum"] / s["true_sq_sum"], recall, abs_tol=1e-12)
        assert s["static_abs_sum"] == 0.0
    leak = true.copy()
    leak[0, 2:] = 0.3  # 0.3 m of sideways motion on every static pixel
    s = field_sums(leak, true, moving, static)
    assert math.isclose(s["static_abs_sum"] / s["static_n"], 0.3) and math.isclose(s["dot_sum"] / s["true_sq_sum"], 1.0)


@pytest.mark.parametrize("object_motion", [True, False])
def test_evaluate_synthetic_scores_the_object_motion_field(tiny_world, object_motion):
    from dataclasses import replace

    from configs.presets import tiny_cpu
    from model.nets import build_nets

    cfg = tiny_cpu()
    torch.manual_seed(0)
    nets = build_nets(cfg.depth, replace(cfg.motion, use_object_motion=object_motion))
    if object_motion:  # the zero-initialised field: give its output layers a bias so the metric sees a field
        for level in nets.motion.object_levels:
            torch.nn.init.constant_(level.out.bias, 0.05)
    m = evaluate_synthetic(nets, tiny_world, size_wh=(104, 32), batch_size=3)
    if object_motion:
        assert math.isfinite(m["field_recall"]) and m["field_recall"] != 0.0
        assert m["field_static"] > 0.01  # a constant field leaks onto the static scene
    else:
        assert math.isnan(m["field_recall"]) and math.isnan(m["field_static"])


def test_dense_errors_split_the_moving_pixels_into_oncoming_and_the_rest():
    gt, moving, sky = _scene()
    oncoming = np.zeros_like(moving)
    oncoming[25:35, 60:90] = True  # half inside the moving mask, half on static pixels (which do not count)
    wrong = gt.copy()
    wrong[moving & oncoming] *= 0.5  # oncoming cars twice too near, other moving cars exact
    s = dense_depth_sums(torch.from_numpy(wrong), gt, moving, sky, oncoming_HW=oncoming)
    assert s["oncoming_n"] == (moving & oncoming).sum() > 0
    same_dir = (s["moving_sum"] - s["oncoming_sum"]) / (s["moving_n"] - s["oncoming_n"])
    assert s["oncoming_sum"] / s["oncoming_n"] > 0.4 and same_dir < 0.05
    assert dense_depth_sums(torch.from_numpy(wrong), gt, moving, sky)["oncoming_n"] == 0.0
