"""Overfit one analytic triplet (camera moving forward down a textured street): the photometric loss must fall
and the median-scaled predicted depth must correlate with the exact depth."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from model.config import DepthNetConfig, LossConfig, MotionNetConfig
from model.nets import build_nets, predict_depth
from model.train_step import train_step
from tests.model import scene

H, W = 48, 128
STEPS = 100


def _log_depth_correlation(pred_1HW: torch.Tensor, gt_1HW: torch.Tensor) -> tuple[float, float]:
    pred = pred_1HW * (gt_1HW.median() / pred_1HW.median())
    r = torch.corrcoef(torch.stack([pred.flatten().log(), gt_1HW.flatten().log()]))[0, 1]
    abs_rel = ((pred - gt_1HW).abs() / gt_1HW).mean()
    return float(r), float(abs_rel)


def test_overfit_one_triplet_learns_depth():
    torch.manual_seed(0)
    prev, _ = scene.render(H, W, center=(0.0, 0.0, -0.4))
    target, gt = scene.render(H, W)
    nxt, _ = scene.render(H, W, center=(0.0, 0.0, 0.4))
    frames = torch.stack([prev, target, nxt])[None]
    batch = SimpleNamespace(
        frames_aug_BSCHW=frames, frames_BSCHW=frames, K_B33=scene.intrinsics(H, W).float()[None]
    )
    # Static scene: the object-motion branch is off to keep the test fast (it is exercised in test_nets.py).
    nets = build_nets(DepthNetConfig(), MotionNetConfig(use_object_motion=False))
    cfg = LossConfig()
    optimizer = torch.optim.Adam(nets.parameters(), lr=2e-4)
    nets.eval()
    r0, abs_rel0 = _log_depth_correlation(predict_depth(nets, target[None])[0], gt)
    nets.train()
    losses = []
    for step in range(STEPS):
        out = train_step(nets, optimizer, batch, cfg, step=step)
        losses.append(out.logs["photometric"])
    nets.eval()
    r, abs_rel = _log_depth_correlation(predict_depth(nets, target[None])[0], gt)
    first, last = losses[0], sum(losses[-5:]) / 5
    print(
        f"photometric {first:.4f} -> {last:.4f}; log-depth correlation {r0:.3f} -> {r:.3f}; "
        f"abs_rel (median-scaled) {abs_rel0:.3f} -> {abs_rel:.3f}"
    )
    assert last < 0.5 * first
    assert r > 0.8
