"""The renderer's culling is exact: the accelerated paths equal a brute-force cast against every box."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth import WorldConfig, lidar, render
from pipeline.synth.kitti import KittiRig
from pipeline.synth.world import make_world


@pytest.mark.parametrize("seed", [0, 1])
def test_camera_and_lidar_culling_match_brute_force(seed):
    world = make_world(WorldConfig(num_moving=8), duration=8.0, seed=seed)
    rig = KittiRig((208, 64))
    cam = render.Camera(world, rig.K, (208, 64))
    dirs_velo = lidar.lidar_directions(32, 256)
    for t in (0.0, 4.05, 7.9):
        pose = world.rig_pose(t) @ rig.T_rect0_cam("02")
        frame = cam.render(pose, t)
        dirs = np.einsum("ij,jhw->ihw", pose[:3, :3], cam.rays_cam_3HW).astype(np.float32)
        brute = render.cast(world, pose[:3, 3], dirs, t)
        depth = np.where(np.isfinite(brute.t_P), brute.t_P, render.SKY_DEPTH).reshape(64, 208)
        np.testing.assert_allclose(frame.depth_HW, depth, rtol=1e-6)
        T_velo = world.rig_pose(t) @ rig.T_rect0_velo
        pts = lidar.scan_lidar(world, T_velo, dirs_velo, t)
        d = np.einsum("ij,baj->iba", T_velo[:3, :3], dirs_velo).astype(np.float32)
        hit = render.cast(world, T_velo[:3, 3], d, t, max_t=120.0)
        ok = np.isfinite(hit.t_P) & (hit.t_P > 0.5)
        assert pts.shape[0] == ok.sum()
        np.testing.assert_allclose(pts[:, :3], dirs_velo.reshape(-1, 3)[ok] * hit.t_P[ok, None], atol=1e-4)


def test_pixel_rays_follow_the_pixel_centre_convention():
    world = make_world(WorldConfig(), duration=1.0, seed=0)
    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 20.0], [0.0, 0.0, 1.0]])
    cam = render.Camera(world, K, (101, 41))
    ray = cam.rays_cam_3HW[:, 20, 50]
    np.testing.assert_allclose(ray, [0.0, 0.0, 1.0], atol=1e-7)  # pixel (50, 20) is the principal point
