"""Physical consistency of the synthetic KITTI tree: velodyne vs. rendered depth, stereo, temporal warping."""

from __future__ import annotations

import numpy as np
import pykitti

from pipeline.intrinsics import resize_K
from pipeline.synth import SKY_DEPTH, load_truth, truth_path
from pipeline.synth.kitti import FULL_K, FULL_SIZE
from tests.synth.helpers import bilinear, read_rgb, velo_depth_map, warp_coords

DATE = "2011_09_26"
DRIVE = "2011_09_26_drive_0001_sync"


def _paths(root, k, cam="image_02"):
    img = root / DATE / DRIVE / cam / "data" / f"{k:010d}.png"
    return img, truth_path(str(img))


def test_velodyne_projects_onto_rendered_depth(kitti_tree):
    root, _, _ = kitti_tree
    for k in (0, 3):
        gt = velo_depth_map(root / DATE, root / DATE / DRIVE / "velodyne_points" / "data" / f"{k:010d}.bin")
        truth = load_truth(_paths(root, k)[1])
        valid = gt > 0
        assert valid.sum() > 2000, "too few velodyne points land in the image"
        rel = np.abs(truth.depth_HW[valid] - gt[valid]) / gt[valid]
        assert np.median(rel) < 0.01
        assert np.mean(rel < 0.05) > 0.9  # only depth edges (sub-pixel rounding of u, v) may differ
        # monodepth2's `round(u) - 1` shift moves every point by one pixel: still close on smooth surfaces.
        gt_md2 = velo_depth_map(root / DATE, root / DATE / DRIVE / "velodyne_points" / "data" / f"{k:010d}.bin",
                                matlab_offset=True)
        v2 = gt_md2 > 0
        assert np.median(np.abs(truth.depth_HW[v2] - gt_md2[v2]) / gt_md2[v2]) < 0.05


def test_pykitti_loads_tree_with_intended_intrinsics(kitti_tree):
    root, cfg, summary = kitti_tree
    data = pykitti.raw(str(root), DATE, "0001")
    expected_K = resize_K(FULL_K, FULL_SIZE, cfg.size_wh)
    np.testing.assert_allclose(data.calib.K_cam2, expected_K, rtol=1e-6)
    np.testing.assert_allclose(summary["K"], expected_K, rtol=1e-6)
    assert abs(data.calib.b_rgb - 0.54) < 1e-3
    assert len(data) == cfg.num_frames
    assert data.get_cam2(1).size == cfg.size_wh
    assert data.get_cam3(1).size == cfg.size_wh
    velo = data.get_velo(2)
    assert velo.ndim == 2 and velo.shape[1] == 4 and velo.shape[0] > 10000
    assert (velo[:, 0] > 0).all()
    # vf is the true forward speed: distance between consecutive camera positions / time.
    t0, t1 = load_truth(_paths(root, 1)[1]), load_truth(_paths(root, 2)[1])
    speed = np.linalg.norm(t1.pose_cam_to_world[:3, 3] - t0.pose_cam_to_world[:3, 3]) / (t1.time_s - t0.time_s)
    vf = 0.5 * (data.oxts[1].packet.vf + data.oxts[2].packet.vf)
    assert abs(vf - speed) / speed < 0.02
    dts = np.diff([t.timestamp() for t in data.timestamps])
    assert np.all(np.abs(dts - 0.1) < 0.005)
    # GPS/IMU poses (pykitti's Mercator) move like the cameras: same distance, opposite-signed yaw convention
    # (oxts yaw is counter-clockwise seen from above; the world's yaw turns right).
    ta, tb = load_truth(_paths(root, 0)[1]), load_truth(_paths(root, 3)[1])
    cam_dist = np.linalg.norm(tb.pose_cam_to_world[:3, 3] - ta.pose_cam_to_world[:3, 3])
    imu_dist = np.linalg.norm(data.oxts[3].T_w_imu[:3, 3] - data.oxts[0].T_w_imu[:3, 3])
    assert abs(imu_dist - cam_dist) < 0.01 * cam_dist
    cam_yaw = np.arctan2(tb.pose_cam_to_world[0, 2], tb.pose_cam_to_world[2, 2]) - np.arctan2(
        ta.pose_cam_to_world[0, 2], ta.pose_cam_to_world[2, 2])
    assert abs((data.oxts[3].packet.yaw - data.oxts[0].packet.yaw) + cam_yaw) < 1e-6


def test_stereo_pair_agrees_with_disparity(kitti_tree):
    root, _, _ = kitti_tree
    left_p, left_t = _paths(root, 2, "image_02")
    right_p, right_t = _paths(root, 2, "image_03")
    left, right = read_rgb(left_p), read_rgb(right_p)
    tl, tr = load_truth(left_t), load_truth(right_t)
    K = tl.K_33
    np.testing.assert_allclose(tl.pose_cam_to_world[:3, :3], tr.pose_cam_to_world[:3, :3])
    baseline = np.linalg.norm(tr.pose_cam_to_world[:3, 3] - tl.pose_cam_to_world[:3, 3])
    assert abs(baseline - 0.54) < 1e-6
    h, w = tl.depth_HW.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    ur = u - K[0, 0] * baseline / tl.depth_HW
    warped, inside = bilinear(right, ur, v)
    depth_r, _ = bilinear(tr.depth_HW[..., None], ur, v)
    visible = inside & (np.abs(depth_r[..., 0] - tl.depth_HW) < 0.02 * tl.depth_HW) & ~tl.sky_HW
    assert visible.mean() > 0.6
    err_warp = np.abs(warped - left).mean(-1)[visible].mean()
    err_none = np.abs(right - left).mean(-1)[visible].mean()
    assert err_warp < 0.02
    assert err_warp < 0.25 * err_none


def test_temporal_warp_reproduces_the_next_frame(kitti_tree):
    root, _, _ = kitti_tree
    src_p, src_t = _paths(root, 1)
    tgt_p, tgt_t = _paths(root, 2)
    src, tgt = read_rgb(src_p), read_rgb(tgt_p)
    ts, tt = load_truth(src_t), load_truth(tgt_t)
    T = np.linalg.inv(tt.pose_cam_to_world) @ ts.pose_cam_to_world
    assert np.linalg.norm(T[:3, 3]) > 0.5  # the camera moved about a metre
    u, v, z = warp_coords(ts.depth_HW.astype(np.float64), ts.K_33, T)
    warped, inside = bilinear(tgt, u, v)
    depth_t, _ = bilinear(tt.depth_HW[..., None], u, v)
    moving_t, _ = bilinear(tt.moving_HW[..., None].astype(np.float32), u, v)
    static = ~ts.moving_HW & (moving_t[..., 0] == 0) & ~ts.sky_HW
    visible = inside & (np.abs(depth_t[..., 0] - z) < 0.02 * z) & static & (ts.depth_HW < SKY_DEPTH)
    assert visible.mean() > 0.5
    err_warp = np.abs(warped - src).mean(-1)[visible].mean()
    err_none = np.abs(tgt - src).mean(-1)[visible].mean()
    assert err_warp < 0.025
    assert err_warp < 0.3 * err_none
    # Moving cars are not explained by the camera motion: the rigid warp fails on them.
    mov = inside & ts.moving_HW
    if mov.sum() > 50:
        err_mov = np.abs(warped - src).mean(-1)[mov].mean()
        assert err_mov > 2 * err_warp


def test_truth_files_describe_frames(kitti_tree):
    root, cfg, summary = kitti_tree
    t = load_truth(_paths(root, 0)[1])
    w, h = cfg.size_wh
    assert t.depth_HW.shape == (h, w) and t.depth_HW.dtype == np.float32
    assert np.all(t.depth_HW > 0) and np.all(np.isfinite(t.depth_HW))
    assert np.all(t.depth_HW[t.sky_HW] == SKY_DEPTH)
    assert t.moving_HW.dtype == bool and t.moving_HW.any()  # the car ahead in the ego lane is in view
    # Road pixels: depth from the camera height and the ray's downward slope.
    K = t.K_33
    row = h - 1
    expected = K[1, 1] * 1.65 / (row - K[1, 2])
    road = t.instance_HW[row] == 0
    assert np.allclose(t.depth_HW[row][road], expected, rtol=1e-3)
    assert summary["num_frames"] == cfg.num_frames
