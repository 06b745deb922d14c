"""Geometry invariants on random data and on an analytic, exactly rendered scene (tests/model/scene.py)."""

from __future__ import annotations

import math

import pytest
import torch

from model import geometry as G
from tests.model import scene

H, W = 48, 128


def _K(batch: int) -> torch.Tensor:
    return scene.intrinsics(H, W).float().expand(batch, 3, 3).clone()


def test_disp_depth_round_trip_and_range():
    disp = torch.rand(2, 1, 5, 7)
    depth = G.disp_to_depth(disp, min_depth=0.1, max_depth=100.0)
    assert torch.allclose(G.depth_to_disp(depth, min_depth=0.1, max_depth=100.0), disp, atol=1e-5)
    ends = G.disp_to_depth(torch.tensor([0.0, 1.0]), min_depth=0.1, max_depth=100.0)
    assert torch.allclose(ends, torch.tensor([100.0, 0.1]))


def test_pose_vec_to_mat_matches_rotation_and_inverse():
    aa = torch.tensor([[0.0, 0.3, 0.0]])
    t = torch.tensor([[1.0, 2.0, 3.0]])
    T = G.pose_vec_to_mat(aa, t)
    assert torch.allclose(T[0, :3, :3], scene.rotation_y(0.3).float(), atol=1e-6)
    assert torch.allclose(T[0, :3, 3], t[0])
    assert torch.allclose(G.invert_pose(T) @ T, torch.eye(4)[None], atol=1e-6)
    assert torch.allclose(
        G.pose_vec_to_mat(torch.zeros(4, 3), torch.zeros(4, 3)), torch.eye(4).expand(4, 4, 4)
    )


def test_project_backproject_round_trip():
    depth = torch.rand(3, 1, H, W) * 20 + 1
    K = _K(3)
    points = G.backproject(depth, torch.linalg.inv(K))
    assert torch.allclose(points[:, 2:3], depth)
    pix = G.project(points, K)
    grid = G.pixel_grid(H, W, like=depth)[None].expand(3, -1, -1, -1)
    assert torch.allclose(pix, grid, atol=1e-3)


def test_sample_pixels_convention_pixel_centres_at_integers():
    image = torch.arange(H * W, dtype=torch.float32).reshape(1, 1, H, W)
    pix = torch.tensor([[[[0.0, W - 1.0, 2.5]], [[0.0, H - 1.0, 3.0]]]])  # (1, 2, 1, 3): (u, v) triples
    out = G.sample_pixels(image, pix)[0, 0, 0]
    assert out.tolist() == pytest.approx([0.0, H * W - 1.0, 3 * W + 2.5])


def test_identity_pose_reproduces_the_image_for_any_batch_size():
    for batch in (1, 3):
        image = torch.rand(batch, 3, H, W)
        depth = torch.rand(batch, 1, H, W) * 10 + 0.5
        warped, valid = G.warp(image, depth, _K(batch), torch.eye(4).expand(batch, 4, 4))
        assert torch.allclose(warped, image, atol=1e-4)
        assert valid.min() == 1


def test_results_independent_of_batch_size():
    image = torch.rand(4, 3, H, W)
    depth = torch.rand(4, 1, H, W) * 10 + 1
    T = G.pose_vec_to_mat(torch.randn(4, 3) * 0.05, torch.randn(4, 3) * 0.3)
    motion = torch.randn(4, 3, H, W) * 0.1
    full, valid_full = G.warp(image, depth, _K(4), T, motion)
    for i in range(4):
        one, valid_one = G.warp(image[i : i + 1], depth[i : i + 1], _K(1), T[i : i + 1], motion[i : i + 1])
        assert torch.allclose(one, full[i : i + 1], atol=1e-5)
        assert torch.equal(valid_one, valid_full[i : i + 1])


def test_known_rigid_motion_warps_source_onto_target():
    target, depth = scene.render(H, W)
    center = (0.2, -0.05, 0.6)
    R = scene.rotation_y(math.radians(2.0))
    source, _ = scene.render(H, W, center=center, R_wc=R)
    T = scene.T_target_to_source(center, R)[None]
    warped, valid = G.warp(source[None], depth[None], _K(1), T)
    mask = valid[0].bool().expand(3, -1, -1)
    err_warped = (warped[0] - target).abs()[mask].mean()
    err_unwarped = (source - target).abs()[mask].mean()
    assert valid.mean() > 0.6
    assert err_warped < 0.01, err_warped
    print(f"rigid warp: err {err_warped:.4f} vs unwarped {err_unwarped:.4f}, valid {valid.mean():.2f}")
    assert err_unwarped > 5 * err_warped


def test_object_motion_field_explains_a_moving_box():
    offset_t, offset_s = (0.0, 0.0, 0.0), (0.6, 0.0, 1.5)  # the box moves 0.6 m right, 1.5 m away
    center = (0.0, 0.0, 0.5)
    target, depth = scene.render(H, W, moving_box=offset_t)
    source, _ = scene.render(H, W, center=center, moving_box=offset_s)
    _, static_depth = scene.render(H, W)
    box = (depth < static_depth - 1e-3)[None]  # box pixels in the target
    T = scene.T_target_to_source(center)[None]
    delta = torch.tensor(offset_s) - torch.tensor(offset_t)  # world = target frame; source frame has R = I
    motion = box.float() * delta.view(1, 3, 1, 1)
    rigid, _ = G.warp(source[None], depth[None], _K(1), T)
    moved, _ = G.warp(source[None], depth[None], _K(1), T, motion)
    inner = torch.nn.functional.max_pool2d((~box).float(), 3, 1, 1) == 0  # box interior, away from its edges
    err_rigid = (rigid - target).abs().mean(1, keepdim=True)[inner].mean()
    err_moved = (moved - target).abs().mean(1, keepdim=True)[inner].mean()
    print(f"moving box: err with field {err_moved:.4f} vs rigid {err_rigid:.4f}")
    assert err_moved < 0.02 and err_rigid > 5 * err_moved, (err_rigid, err_moved)
    assert torch.equal(G.moving_mask(motion).bool(), box)
    assert G.moving_mask(torch.zeros_like(motion)).sum() == 0


def test_flow_from_pure_translation_matches_analytic_flow():
    depth = torch.rand(2, 1, H, W) * 10 + 2
    K = _K(2)
    t = torch.tensor([[0.3, -0.1, 0.5], [-0.2, 0.0, -0.4]])
    T = G.pose_vec_to_mat(torch.zeros(2, 3), t)
    flow = G.optical_flow(depth, K, T)
    grid = G.pixel_grid(H, W, like=depth)[None]
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    x = (grid[:, 0] - cx.view(2, 1, 1)) / fx.view(2, 1, 1)
    y = (grid[:, 1] - cy.view(2, 1, 1)) / fy.view(2, 1, 1)
    z = depth[:, 0]
    tx, ty, tz = (t[:, i].view(2, 1, 1) for i in range(3))
    u2 = fx.view(2, 1, 1) * (x * z + tx) / (z + tz) + cx.view(2, 1, 1)
    v2 = fy.view(2, 1, 1) * (y * z + ty) / (z + tz) + cy.view(2, 1, 1)
    expected = torch.stack([u2 - grid[:, 0], v2 - grid[:, 1]], dim=1)
    assert torch.allclose(flow, expected, atol=1e-3)
    # A per-pixel motion field equal to the translation gives the same flow as the camera translation.
    flow_field = G.optical_flow(depth, K, torch.eye(4).expand(2, 4, 4), t.view(2, 3, 1, 1).expand(2, 3, H, W))
    assert torch.allclose(flow_field, expected, atol=1e-3)


def test_resize_intrinsics_follows_the_pixel_centre_convention_of_the_pipeline():
    from pipeline.intrinsics import resize_K

    # the scene's intrinsics at half size are exactly its intrinsics resized (pixel centres at integers)
    half = G.resize_intrinsics(_K(2), (H, W), (H // 2, W // 2))
    assert torch.allclose(half, scene.intrinsics(H // 2, W // 2).float().expand(2, 3, 3), atol=1e-5)
    K = torch.tensor([[[721.5, 0.3, 609.6], [0.0, 718.9, 172.9], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    ours = G.resize_intrinsics(K, (375, 1242), (24, 52))[0].numpy()
    theirs = resize_K(K[0].numpy(), (1242, 375), (52, 24))
    assert abs(ours - theirs).max() < 1e-9


def test_channel_norm_is_the_euclidean_norm_over_channels():
    x = torch.randn(2, 3, 5, 7)
    assert torch.allclose(G.channel_norm(x), x.norm(dim=1, keepdim=True), atol=1e-6)
