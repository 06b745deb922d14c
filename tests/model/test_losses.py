"""Loss invariants: identical images, auto-masking, smoothness, motion regularisers, burn-in schedule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from model import losses as L
from model.config import LossConfig
from model.geometry import depth_to_disp
from model.nets import NetOutputs
from model.train_step import compute_loss
from tests.model import scene


def test_photometric_error_zero_for_identical_images_and_positive_otherwise():
    x = torch.rand(2, 3, 20, 30)
    assert L.photometric_error(x, x).abs().max() < 1e-6
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    pe = L.photometric_error(y, x)
    assert pe.shape == (2, 1, 20, 30) and pe.mean() > 0.01


def test_ssim_is_one_for_identical_and_reflection_padded():
    x = torch.rand(1, 3, 8, 9)
    assert L.ssim_dissimilarity(x, x).max() < 1e-6
    assert L.ssim_dissimilarity(x, 1 - x).shape == x.shape


def test_automask_keeps_pixels_a_static_camera_explains():
    """Where the sources equal the target (static scene + static camera) the identity term wins: masked out.
    Where a source differs from the target and the warp explains it, the pixel is kept."""
    torch.manual_seed(0)
    target = torch.rand(1, 3, 16, 16)
    moved = torch.rand(1, 3, 16, 16)
    static = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    static[..., :8] = True  # left half: the sources show exactly the target
    source = torch.where(static, target, moved)
    identity = torch.cat([L.photometric_error(source, target)] * 2, dim=1)
    # the warp reproduces the target everywhere up to a small error
    warped = (target + 0.01).clamp(0, 1)
    reproj = torch.cat([L.photometric_error(warped, target)] * 2, dim=1)
    loss, mask = L.min_reprojection_loss(reproj, identity)
    assert mask[..., :7].sum() == 0  # column 7: the 3x3 SSIM window sees the moved half
    assert mask[..., 10:].min() == 1  # away from the 3x3 SSIM window at the boundary
    assert loss < reproj.mean()
    no_mask_loss, ones = L.min_reprojection_loss(reproj, None)
    assert ones.min() == 1 and torch.isclose(no_mask_loss, reproj.min(dim=1).values.mean())


def test_min_reprojection_picks_the_better_source():
    a = torch.full((1, 1, 4, 4), 0.2)
    b = torch.full((1, 1, 4, 4), 0.5)
    loss, _ = L.min_reprojection_loss(torch.cat([a, b], 1), None)
    assert loss.item() == pytest.approx(0.2)
    loss_mean, _ = L.min_reprojection_loss(torch.cat([a, b], 1), None, use_min=False)
    assert loss_mean.item() == pytest.approx(0.35)


def test_smoothness_zero_for_constant_disparity_and_edge_aware():
    image = torch.rand(1, 3, 16, 16)
    assert L.smoothness_loss(torch.full((1, 1, 16, 16), 0.3), image) == 0
    disp = torch.zeros(1, 1, 16, 16)
    disp[..., 8:] = 1.0
    disp = disp + 0.1
    flat = torch.zeros(1, 3, 16, 16)
    edge = torch.zeros(1, 3, 16, 16)
    edge[..., 8:] = 1.0
    assert L.smoothness_loss(disp, edge) < L.smoothness_loss(disp, flat)
    # mean-normalised: scaling the disparity does not change the loss
    assert torch.isclose(L.smoothness_loss(disp, flat), L.smoothness_loss(3 * disp, flat))


def test_outlier_aware_regularizer_zero_field_and_rigid_penalty():
    total = torch.zeros(2, 3, 12, 12)
    total[:, 2] = 0.5  # camera translation
    no_outliers = torch.zeros(2, 1, 12, 12)
    zero = torch.zeros(2, 3, 12, 12)
    assert L.outlier_aware_regularizer(zero, total + zero, no_outliers) == 0
    field = torch.zeros(2, 3, 12, 12)
    field[:, 0, 4:8, 4:8] = 0.3
    rigid_penalty = L.outlier_aware_regularizer(field, total + field, no_outliers)
    assert rigid_penalty > 0
    # the same motion inside detected outliers (pixels the rigid model cannot explain) costs less
    outliers = torch.zeros(2, 1, 12, 12)
    outliers[..., 3:9, 3:9] = 1
    assert L.outlier_aware_regularizer(field, total + field, outliers) < rigid_penalty
    field.requires_grad_(True)
    L.outlier_aware_regularizer(field, total + field, no_outliers).backward()
    assert field.grad.abs().sum() > 0


def test_outlier_mask_selects_rigid_outliers_that_motion_explains():
    e_cam = torch.full((1, 1, 10, 10), 0.1)
    e_cam[..., :2, :2] = 0.9
    e_full = e_cam.clone()
    e_full[..., :2, :1] = 0.05  # the field explains half of the outliers
    e_full[..., :2, 1:2] = 0.95  # and makes the other half worse
    mask = L.outlier_mask(e_cam, e_full)
    assert mask.sum() == 2 and mask[..., :2, :1].min() == 1
    # a zero field (e_full == e_cam) leaves every rigid outlier free to move (only TV applies there)
    assert L.outlier_mask(e_cam, e_cam).sum() == 4


def test_li_regularizer_zero_field_and_sparsity():
    total = torch.ones(1, 3, 10, 10)
    assert L.li_motion_regularizer(torch.zeros(1, 3, 10, 10), total) < 1e-9
    field = torch.zeros(1, 3, 10, 10)
    field[..., 2:5, 2:5] = 0.5
    assert L.li_motion_regularizer(field, total + field) > 0


def test_photometric_error_of_exact_warp_is_small_on_the_scene():
    target, _ = scene.render(32, 96)
    source, _ = scene.render(32, 96, center=(0.0, 0.0, 0.5))
    assert L.photometric_error(source[None], target[None]).mean() > 0.05


def test_motion_burn_in_schedule_and_validation():
    cfg = LossConfig(motion_burnin_start=10, motion_burnin_end=20)
    assert [cfg.motion_scale(s) for s in (0, 9, 10, 15, 20, 100)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert LossConfig(motion_burnin_start=0, motion_burnin_end=0).motion_scale(0) == 1.0
    with pytest.raises(ValueError, match="motion_burnin"):
        LossConfig(motion_burnin_start=5, motion_burnin_end=1)
    with pytest.raises(ValueError, match="motion_regularizer"):
        LossConfig(motion_regularizer="nope")
    with pytest.raises(ValueError, match="num_scales"):
        LossConfig(num_scales=5)


def test_ssim_matches_the_average_pooling_formula_and_reuses_target_statistics():
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 9, 13, generator=g), torch.rand(2, 3, 9, 13, generator=g)
    xp, yp = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x, mu_y = F.avg_pool2d(xp, 3, 1), F.avg_pool2d(yp, 3, 1)
    sx = F.avg_pool2d(xp * xp, 3, 1) - mu_x**2
    sy = F.avg_pool2d(yp * yp, 3, 1) - mu_y**2
    sxy = F.avg_pool2d(xp * yp, 3, 1) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    want = torch.clamp((1 - (2 * mu_x * mu_y + c1) * (2 * sxy + c2) / ((mu_x**2 + mu_y**2 + c1) * (sx + sy + c2))) / 2, 0, 1)
    assert torch.allclose(L.ssim_dissimilarity(x, y), want, atol=1e-5)
    assert torch.allclose(L.ssim_dissimilarity(x, y, y_stats=L.ssim_stats(y)), want, atol=1e-5)
    assert torch.allclose(L.box3(xp), F.avg_pool2d(xp, 3, 1), atol=1e-6)


def _flat_road_depth_B1HW(H: int = 64, W: int = 208, *, fy: float = 120.0, cy: float = 30.0, height: float = 1.65):
    """Depth of a flat road seen by a level camera (80 m at and above the horizon) and its intrinsics."""
    v = torch.arange(H, dtype=torch.float32) + 0.5
    road = (height * fy / (v - cy).clamp_min(1e-3)).clamp(max=80.0)
    K = torch.tensor([[[fy, 0.0, W / 2], [0.0, fy, cy], [0.0, 0.0, 1.0]]])
    return road.view(1, 1, H, 1).expand(1, 1, H, W).clone(), K


def test_ground_bound_is_zero_on_a_flat_road_and_penalises_only_what_lies_beneath_it():
    depth, K = _flat_road_depth_B1HW()
    assert float(L.ground_bound_loss(depth, K)) == 0.0
    assert float(L.ground_bound_loss(depth * 7.0, K)) == 0.0  # scale-free: the bound comes from the image itself
    nearer = depth.clone()
    nearer[..., 40:50, 90:110] *= 0.5  # a car standing on the road: nearer than the road behind it
    assert float(L.ground_bound_loss(nearer, K)) == 0.0
    sunk = depth.clone()
    sunk[..., 40:50, 90:110] *= 1.4  # farther than the road in its rows: below the ground
    loss = L.ground_bound_loss(sunk.requires_grad_(), K)
    assert float(loss) > 0
    (grad,) = torch.autograd.grad(loss, sunk)
    inside = torch.zeros_like(grad, dtype=torch.bool)
    inside[..., 40:50, 90:110] = True
    assert (grad[inside] > 0).all() and (grad[~inside] == 0).all()
    # the bottom rows set the bound and are left to the photometric loss (else the bound ratchets down)
    bottom = depth.clone()
    bottom[..., 60:, 10:20] *= 1.4
    assert float(L.ground_bound_loss(bottom, K)) == 0.0



def _street_triplet(height: int, width: int):
    """prev / target / next renderings of the analytic scene, the target's true depth, T_target->prev, ->next."""
    target, depth = scene.render(height, width)
    prev_c, next_c = (0.05, 0.0, -0.5), (-0.05, 0.0, 0.5)
    frames = torch.stack([scene.render(height, width, center=prev_c)[0], target,
                          scene.render(height, width, center=next_c)[0]])[None]
    T = torch.stack([scene.T_target_to_source(prev_c), scene.T_target_to_source(next_c)])
    return frames, depth[None], T


def _loss_at(frames, depth, T, *, num_scales: int, resolution: str) -> float:
    """The training loss of outputs that are the given depth (area-downsampled per scale) and camera motion."""
    h, w = frames.shape[-2:]
    disps = [depth_to_disp(F.interpolate(depth, scale_factor=0.5**s, mode="area"), min_depth=0.1, max_depth=100.0)
             for s in range(4)]
    out = NetOutputs(disps=disps, depth_B1HW=depth, T_B44=T, motion_B3HW=None)
    batch = SimpleNamespace(frames_BSCHW=frames, K_B33=scene.intrinsics(h, w).float()[None])
    cfg = LossConfig(num_scales=num_scales, scale_resolution=resolution, smoothness_weight=0.0)
    torch.manual_seed(0)  # auto-masking's tie-breaking noise
    return float(compute_loss(out, batch, cfg, min_depth=0.1, max_depth=100.0, motion_scale=0.0)[0])


@pytest.mark.parametrize("resolution", ["full", "native"])
def test_multi_scale_loss_is_lowest_at_the_true_depth_at_either_loss_resolution(resolution):
    frames, depth, T = _street_triplet(64, 192)
    truth = _loss_at(frames, depth, T, num_scales=4, resolution=resolution)
    wrong = _loss_at(frames, depth * 1.6, T, num_scales=4, resolution=resolution)
    print(f"{resolution}: loss at the true depth {truth:.4f}, at 1.6x {wrong:.4f}")
    assert truth < 0.6 * wrong
    # scale 0 is the full-resolution term in both; only the coarser scales differ
    single = _loss_at(frames, depth, T, num_scales=1, resolution=resolution)
    assert single == _loss_at(frames, depth, T, num_scales=1, resolution="full")
