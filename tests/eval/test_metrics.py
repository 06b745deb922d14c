"""model.metrics and engine.evaluate protocols against hand-computed values and an independent NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.evaluate import (
    EvalProtocol,
    crop_box,
    eval_mask,
    evaluate_predictions,
    make_protocol,
    post_process_disparity,
)
from model.metrics import METRIC_NAMES, MetricAccumulator, compute_errors, evaluate_depth_map, median


def np_compute_errors(gt, pred):
    """The standard formulas, written independently (monodepth2 evaluate_depth.py)."""
    thresh = np.maximum(gt / pred, pred / gt)
    a1 = (thresh < 1.25).mean()
    a2 = (thresh < 1.25**2).mean()
    a3 = (thresh < 1.25**3).mean()
    rmse = np.sqrt(((gt - pred) ** 2).mean())
    rmse_log = np.sqrt(((np.log(gt) - np.log(pred)) ** 2).mean())
    abs_rel = np.mean(np.abs(gt - pred) / gt)
    sq_rel = np.mean(((gt - pred) ** 2) / gt)
    return np.array([abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3])


def np_eval_eigen(pred_disps, gts, *, median_scaling=True, scale=1.0, crop="garg", cap=(1e-3, 80.0), mask_kind="range"):
    """monodepth2's evaluate() loop for external disparities, in plain NumPy (nearest-free bilinear via torch only
    for the resize, which is cv2.resize's INTER_LINEAR)."""
    errors = []
    for disp, gt in zip(pred_disps, gts):
        h, w = gt.shape
        d = torch.nn.functional.interpolate(
            torch.from_numpy(disp.astype(np.float32))[None, None], size=(h, w), mode="bilinear", align_corners=False
        )[0, 0].numpy()
        pred = 1 / d
        if mask_kind == "range":
            mask = np.logical_and(gt > cap[0], gt < cap[1])
        else:
            mask = gt > 0
        if crop == "garg":
            c = np.array([0.40810811 * h, 0.99189189 * h, 0.03594771 * w, 0.96405229 * w]).astype(np.int32)
            cm = np.zeros(mask.shape)
            cm[c[0] : c[1], c[2] : c[3]] = 1
            mask = np.logical_and(mask, cm)
        p = pred[mask] * scale
        g = gt[mask]
        if median_scaling:
            p = p * (np.median(g) / np.median(p))
        p = np.clip(p, cap[0], cap[1])
        errors.append(np_compute_errors(g, p))
    return np.array(errors).mean(0)


def test_hand_computed_values():
    gt = np.array([2.0, 4.0, 10.0])
    pred = np.array([1.0, 4.0, 12.5])
    e = compute_errors(gt, pred).numpy()
    # |gt-pred|/gt = 0.5, 0, 0.25 -> 0.25; (gt-pred)^2/gt = 0.5, 0, 0.625 -> 0.375
    assert e[0] == pytest.approx(0.25)
    assert e[1] == pytest.approx(0.375)
    assert e[2] == pytest.approx(math.sqrt((1 + 0 + 6.25) / 3))
    assert e[3] == pytest.approx(math.sqrt((math.log(2) ** 2 + 0 + math.log(1.25) ** 2) / 3))
    # thresh = 2, 1, 1.25: a1 counts only 1 (1.25 is not < 1.25); a2, a3 count 1 and 1.25 (2 > 1.25**3 = 1.95)
    assert e[4:].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])


def test_median_matches_numpy_for_even_and_odd_counts():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 10):
        x = rng.random(n)
        assert float(median(torch.from_numpy(x))) == pytest.approx(np.median(x))


def test_median_scaling_makes_scaled_prediction_perfect():
    rng = np.random.default_rng(1)
    gt = rng.uniform(2, 60, size=(20, 30))
    res = evaluate_depth_map(gt, gt / 7.0, np.ones_like(gt, bool), use_median_scaling=True)
    assert res.ratio == pytest.approx(7.0)
    assert res.errors_M[:4].abs().max() < 1e-9
    assert res.errors_M[4:].tolist() == [1.0, 1.0, 1.0]
    off = evaluate_depth_map(gt, gt / 7.0, np.ones_like(gt, bool), use_median_scaling=False, scale_factor=7.0)
    assert off.ratio == 1.0 and float(off.errors_M[0]) < 1e-9


def test_clamp_to_depth_caps():
    gt = np.array([[50.0, 70.0]])
    pred = np.array([[200.0, 0.0001]])
    res = evaluate_depth_map(gt, pred, np.ones_like(gt, bool), use_median_scaling=False, min_depth=1e-3, max_depth=80)
    ref = np_compute_errors(np.array([50.0, 70.0]), np.array([80.0, 1e-3]))
    np.testing.assert_allclose(res.errors_M.numpy(), ref, rtol=1e-12)


def test_random_images_match_independent_numpy_reference():
    rng = np.random.default_rng(2)
    gts, disps = [], []
    for h, w in [(375, 1242), (370, 1224), (376, 1241)]:
        gt = np.zeros((h, w), np.float32)
        idx = rng.random((h, w)) < 0.05  # sparse, like projected lidar
        gt[idx] = rng.uniform(0.5, 95, idx.sum())
        gts.append(gt)
        disps.append(rng.uniform(0.01, 1.0, (48, 160)).astype(np.float32))
    for name, kwargs in [
        ("kitti-eigen", {}),
        ("kitti-eigen-benchmark", {"crop": "none", "mask_kind": "positive"}),
    ]:
        means, rows = evaluate_predictions(disps, gts, make_protocol(name))
        ref = np_eval_eigen(disps, gts, **kwargs)
        np.testing.assert_allclose([means[m] for m in METRIC_NAMES], ref, rtol=1e-6, atol=1e-9)
        assert len(rows) == 3
    means, _ = evaluate_predictions(disps, gts, make_protocol("kitti-eigen", use_median_scaling=False, scale_factor=5.4))
    ref = np_eval_eigen(disps, gts, median_scaling=False, scale=5.4)
    np.testing.assert_allclose([means[m] for m in METRIC_NAMES], ref, rtol=1e-6)


def test_depth_predictions_are_resized_as_depth():
    gt = np.full((10, 20), 12.0, np.float32)
    pred_depth = np.full((5, 10), 3.0, np.float32)
    means, _ = evaluate_predictions([pred_depth], [gt], make_protocol("kitti-eigen-benchmark"), pred_type="depth")
    assert means["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    means, _ = evaluate_predictions(
        [pred_depth], [gt], make_protocol("kitti-eigen-benchmark", use_median_scaling=False), pred_type="depth"
    )
    assert means["abs_rel"] == pytest.approx(0.75)


def test_crops_match_the_published_numbers():
    assert crop_box(375, 1242, "garg") == (153, 371, 44, 1197)
    assert crop_box(768, 2048, "cityscapes") == (256, 768, 192, 1856)
    assert crop_box(384, 1024, "cityscapes") == (128, 384, 96, 928)
    gt = np.full((1024, 2048), 10.0)
    p = make_protocol("cityscapes", gt_top_fraction=0.75)
    from engine.evaluate import cut_gt

    cut = cut_gt(gt, p)
    assert cut.shape == (768, 2048)
    assert eval_mask(cut, p).sum() == 512 * 1664


def test_cityscapes_protocol_equals_manydepth_steps():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.0, 100.0, (1024, 2048)).astype(np.float32)
    disp = rng.uniform(0.02, 1.0, (192, 512)).astype(np.float32)
    means, _ = evaluate_predictions([disp], [gt], make_protocol("cityscapes", gt_top_fraction=0.75))
    same, _ = evaluate_predictions([disp], [gt[:768]], make_protocol("cityscapes"))  # GT cut at sharding
    assert same == pytest.approx(means)
    g = gt[:768]
    d = torch.nn.functional.interpolate(torch.from_numpy(disp)[None, None], size=(768, 2048), mode="bilinear")[0, 0]
    pred = 1 / d.numpy()
    g, pred = g[256:, 192:1856], pred[256:, 192:1856]
    mask = (g > 1e-3) & (g < 80)
    gp, pp = g[mask].astype(np.float64), pred[mask].astype(np.float64)
    pp = np.clip(pp * np.median(gp) / np.median(pp), 1e-3, 80)
    np.testing.assert_allclose([means[m] for m in METRIC_NAMES], np_compute_errors(gp, pp), rtol=1e-6)


def test_post_process_matches_monodepth2():
    rng = np.random.default_rng(4)
    l_disp = rng.random((2, 6, 40))
    r_disp = rng.random((2, 6, 40))
    _, h, w = l_disp.shape
    m_disp = 0.5 * (l_disp + r_disp)
    lg, _ = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    l_mask = (1.0 - np.clip(20 * (lg - 0.05), 0, 1))[None, ...]
    r_mask = l_mask[:, :, ::-1]
    ref = r_mask * l_disp + l_mask * r_disp + (1.0 - l_mask - r_mask) * m_disp
    out = post_process_disparity(torch.from_numpy(l_disp), torch.from_numpy(r_disp)).numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_accumulator_merges_and_round_trips():
    rng = np.random.default_rng(5)
    errs = [torch.from_numpy(rng.random(7)) for _ in range(5)]
    a, b, full = MetricAccumulator(), MetricAccumulator(), MetricAccumulator()
    for i, e in enumerate(errs):
        (a if i < 2 else b).add(e)
        full.add(e)
    merged = MetricAccumulator.from_tensor(a.to_tensor() + b.to_tensor())
    assert merged.count == 5
    for k, v in full.means().items():
        assert merged.means()[k] == pytest.approx(v)
    assert a.merge(b).means() == pytest.approx(full.means())
    with pytest.raises(ValueError, match="no images"):
        MetricAccumulator().means()


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="no valid"):
        evaluate_depth_map(np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2), bool), use_median_scaling=True)
    with pytest.raises(ValueError, match="prediction/GT 1: no valid ground-truth pixels"):
        evaluate_predictions([np.ones((4, 4))] * 2, [np.full((8, 8), 5.0), np.zeros((8, 8))], make_protocol("kitti-eigen-benchmark"))
    with pytest.raises(ValueError, match="2 predictions but 1"):
        evaluate_predictions([np.ones((2, 2))] * 2, [np.ones((2, 2))], make_protocol("kitti-eigen"))
    with pytest.raises(ValueError, match="unknown protocol"):
        make_protocol("nyu")
    with pytest.raises(ValueError, match="crop"):
        EvalProtocol(name="x", crop="center")
