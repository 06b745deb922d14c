"""Pose metrics of the in-training validation (engine.validate): sums over triplets that add up across batches and
ranks, exact answers for exact, scaled, standing and padded/unknown cases."""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.validate import pose_means, pose_sums
from model.geometry import pose_vec_to_mat


def _motions(n: int, seed: int = 0) -> torch.Tensor:
    """Target -> (prev, tgt, next) motions of n triplets: ~1 m forward a frame with a little yaw and noise."""
    g = torch.Generator().manual_seed(seed)
    aa = torch.zeros(n, 3, dtype=torch.float64)
    aa[:, 1] = 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
    t = torch.stack([0.05 * torch.randn(n, generator=g, dtype=torch.float64),
                     0.01 * torch.randn(n, generator=g, dtype=torch.float64),
                     -1.0 - 0.1 * torch.rand(n, generator=g, dtype=torch.float64)], dim=1)
    nxt = pose_vec_to_mat(aa, t)
    prev = torch.linalg.inv(pose_vec_to_mat(-aa, t * 0.9))
    return torch.stack([prev, torch.eye(4, dtype=torch.float64).expand(n, 4, 4), nxt], dim=1)


def _reference_ate(gt_S44: np.ndarray, pred_S44: np.ndarray) -> float:
    """monodepth2's 3-frame snippet ATE written out: positions of prev, tgt, next accumulated in time order."""
    def xyz(T):
        m0, m1 = np.linalg.inv(T[0]), T[2]  # prev -> tgt, tgt -> next
        pts = [np.zeros(3), m0[:3, 3], (m0 @ m1)[:3, 3]]
        return np.array(pts)

    g, p = xyz(gt_S44), xyz(pred_S44)
    p = p + (g[0] - p[0])
    scale = np.sum(g * p) / np.sum(p * p) if np.sum(p * p) > 0 else 0.0
    return float(np.sqrt(np.sum((p * scale - g) ** 2)) / 3)


def test_exact_and_scaled_predictions_score_perfectly():
    gt = _motions(6)
    valid = torch.ones(6, dtype=torch.bool)
    m = pose_means(pose_sums(gt.clone(), gt, valid))
    assert m["val_pose_ate"] < 1e-9 and m["val_pose_cosine"] > 1 - 1e-9
    assert math.isclose(m["val_pose_length_ratio"], 1.0, rel_tol=1e-9) and m["val_pose_rotation_error_deg"] < 1e-5
    scaled = gt.clone()
    scaled[:, :, :3, 3] *= 0.02  # a monocular net's arbitrary scale
    m = pose_means(pose_sums(scaled, gt, valid))
    assert m["val_pose_ate"] < 1e-9 and math.isclose(m["val_pose_length_ratio"], 0.02, rel_tol=1e-9)
    assert m["val_pose_triplets"] == 6


def test_standing_camera_and_a_perturbation_match_the_protocol():
    gt = _motions(5, seed=1)
    valid = torch.ones(5, dtype=torch.bool)
    standing = torch.eye(4, dtype=torch.float64).expand(5, 3, 4, 4).clone()
    m = pose_means(pose_sums(standing, gt, valid))
    assert math.isclose(m["val_pose_ate"], m["val_pose_ate_zero_motion"], rel_tol=1e-9)
    want = np.mean([_reference_ate(g.numpy(), s.numpy()) for g, s in zip(gt, standing)])
    assert math.isclose(m["val_pose_ate_zero_motion"], want, rel_tol=1e-9)
    noisy = _motions(5, seed=2)
    m = pose_means(pose_sums(noisy, gt, valid))
    want = np.mean([_reference_ate(g.numpy(), p.numpy()) for g, p in zip(gt, noisy)])
    assert math.isclose(m["val_pose_ate"], want, rel_tol=1e-9) and 0 < want < m["val_pose_ate_zero_motion"]


def test_padding_and_unknown_motions_are_not_counted_and_sums_add_up():
    gt = _motions(8, seed=3)
    pred = _motions(8, seed=4)
    gt_unknown = gt.clone()
    gt_unknown[2] = float("nan")
    valid = torch.ones(8, dtype=torch.bool)
    valid[7] = False
    s = pose_sums(pred, gt_unknown, valid)
    assert pose_means(s)["val_pose_triplets"] == 6
    keep = [0, 1, 3, 4, 5, 6]
    halves = pose_sums(pred[keep[:3]], gt[keep[:3]], valid[:3]) + pose_sums(pred[keep[3:]], gt[keep[3:]], valid[:3])
    assert torch.allclose(s, halves)
    constant = pred.clone()
    constant[:, 2] = pred[0, 2]
    assert pose_means(pose_sums(constant, gt, torch.ones(8, dtype=torch.bool)))["val_pose_spread"] < 1e-6
    assert pose_means(s)["val_pose_spread"] > 0.01
