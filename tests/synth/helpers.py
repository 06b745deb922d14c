"""Geometry helpers for the consistency tests (independent of the renderer's code)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def read_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def read_calib(path) -> dict[str, np.ndarray]:
    """monodepth2's kitti_utils.read_calib_file."""
    data = {}
    with open(path) as f:
        for line in f:
            key, value = line.split(":", 1)
            try:
                data[key] = np.array([float(x) for x in value.split()])
            except ValueError:
                pass
    return data


def velo_depth_map(calib_dir, velo_path, *, matlab_offset: bool = False) -> np.ndarray:
    """monodepth2's generate_depth_map(cam=2) with camera-z depth (vel_depth=False); `matlab_offset` applies its
    `round(u) - 1` shift."""
    cam2cam = read_calib(f"{calib_dir}/calib_cam_to_cam.txt")
    velo2cam = read_calib(f"{calib_dir}/calib_velo_to_cam.txt")
    velo2cam = np.hstack((velo2cam["R"].reshape(3, 3), velo2cam["T"][..., None]))
    velo2cam = np.vstack((velo2cam, np.array([0, 0, 0, 1.0])))
    im_shape = cam2cam["S_rect_02"][::-1].astype(np.int32)
    R_cam2rect = np.eye(4)
    R_cam2rect[:3, :3] = cam2cam["R_rect_00"].reshape(3, 3)
    P_rect = cam2cam["P_rect_02"].reshape(3, 4)
    P_velo2im = np.dot(np.dot(P_rect, R_cam2rect), velo2cam)
    velo = np.fromfile(velo_path, dtype=np.float32).reshape(-1, 4)
    velo = velo[velo[:, 0] >= 0, :]
    velo[:, 3] = 1.0
    velo_pts_im = np.dot(P_velo2im, velo.T).T
    velo_pts_im[:, :2] = velo_pts_im[:, :2] / velo_pts_im[:, 2][..., None]
    shift = 1 if matlab_offset else 0
    velo_pts_im[:, 0] = np.round(velo_pts_im[:, 0]) - shift
    velo_pts_im[:, 1] = np.round(velo_pts_im[:, 1]) - shift
    val = (velo_pts_im[:, 0] >= 0) & (velo_pts_im[:, 1] >= 0)
    val = val & (velo_pts_im[:, 0] < im_shape[1]) & (velo_pts_im[:, 1] < im_shape[0]) & (velo_pts_im[:, 2] > 0)
    velo_pts_im = velo_pts_im[val, :]
    depth = np.zeros(im_shape[:2])
    order = np.argsort(-velo_pts_im[:, 2])  # nearest written last: keeps the minimum per pixel
    pts = velo_pts_im[order]
    depth[pts[:, 1].astype(int), pts[:, 0].astype(int)] = pts[:, 2]
    return depth


def bilinear(img_HWC: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample img at float pixel coordinates (pixel centres at integers); returns (values, inside mask)."""
    h, w = img_HWC.shape[:2]
    inside = (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    u = np.clip(u, 0, w - 1.001)
    v = np.clip(v, 0, h - 1.001)
    u0 = np.floor(u).astype(int)
    v0 = np.floor(v).astype(int)
    a = (u - u0)[..., None]
    b = (v - v0)[..., None]
    out = (img_HWC[v0, u0] * (1 - a) * (1 - b) + img_HWC[v0, u0 + 1] * a * (1 - b)
           + img_HWC[v0 + 1, u0] * (1 - a) * b + img_HWC[v0 + 1, u0 + 1] * a * b)
    return out, inside


def warp_coords(depth_HW, K, T_tgt_from_src):
    """Pixel coordinates in the target camera of every source pixel, and its depth there."""
    h, w = depth_HW.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    pts = (pix @ np.linalg.inv(K).T) * depth_HW[..., None]
    pts = pts @ T_tgt_from_src[:3, :3].T + T_tgt_from_src[:3, 3]
    proj = pts @ K.T
    z = proj[..., 2]
    return proj[..., 0] / z, proj[..., 1] / z, z
