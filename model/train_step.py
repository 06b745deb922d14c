"""One self-supervised training step of RM-Depth: forward, loss, backward, optimizer step.

Shape legend: B batch, S = 3 frames (0 prev, 1 target, 2 next), H, W network resolution.
`batch` is duck-typed like pipeline.batch.Batch (frames_aug_BSCHW, frames_BSCHW, K_B33, optionally gt_T_BS44);
model/ does not import pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import LossConfig
from model.geometry import channel_norm, disp_to_depth, moving_mask, optical_flow, resize_intrinsics, warp
from model.losses import (
    SSIMStats,
    ground_bound_loss,
    li_motion_regularizer,
    min_reprojection_loss,
    outlier_aware_regularizer,
    outlier_mask,
    photometric_error,
    smoothness_loss,
    ssim_stats,
    velocity_loss,
)
from model.motion_net import resize_field
from model.nets import NetOutputs, RMDepthNets, unwrap


@dataclass(frozen=True, kw_only=True)
class Visuals:
    """Detached pictures of the first sources' geometry, computed only when something is logged."""

    depth_B1HW: torch.Tensor
    """Target depth (metres)."""
    motion_field_B3HW: torch.Tensor
    """Object motion field target->next source (metres; zero while the field is off)."""
    flow_B2HW: torch.Tensor
    """Optical flow target->next source (pixels)."""
    moving_mask_B1HW: torch.Tensor
    """Moving-object mask of the target (from the target->next field)."""


@dataclass(frozen=True, kw_only=True)
class StepOutput:
    loss: torch.Tensor
    """Scalar to backpropagate."""
    logs: dict[str, float]
    outputs: NetOutputs
    """The networks' outputs (carry graph; use .detach() to keep them)."""


def _reprojection(sources, poses, motions, depth_B1HW, K_B33, target_B3HW, stats: SSIMStats,
                  cfg: LossConfig) -> torch.Tensor:
    """Photometric error of every warped source against the target, reproj_BSHW (S = number of sources).
    (One source at a time: batching the sources and scales into one warp was measured slower on the CPU.)"""
    errors = []
    for src, T, m in zip(sources, poses, motions, strict=True):
        warped, valid = warp(src, depth_B1HW, K_B33, T, m)
        err = photometric_error(warped, target_B3HW, ssim_weight=cfg.ssim_weight, target_stats=stats)
        if cfg.mask_out_of_view:
            err = torch.where(valid > 0, err, torch.ones_like(err))
        errors.append(err)
    return torch.cat(errors, dim=1)


class _LossView(NamedTuple):
    """The target, the sources and their intrinsics at one loss resolution, with what every comparison against
    that target shares (its SSIM statistics, the unwarped sources' errors for auto-masking)."""

    target: torch.Tensor
    sources: tuple[torch.Tensor, torch.Tensor]
    K_B33: torch.Tensor
    stats: SSIMStats
    identity: torch.Tensor | None


def _loss_view(frames_BSCHW: torch.Tensor, K_B33: torch.Tensor, size_HW: tuple[int, int], cfg: LossConfig) -> _LossView:
    H, W = frames_BSCHW.shape[-2:]
    if (H, W) != size_HW:
        B, S = frames_BSCHW.shape[:2]
        frames_BSCHW = F.interpolate(frames_BSCHW.flatten(0, 1), size=size_HW, mode="area").unflatten(0, (B, S))
        K_B33 = resize_intrinsics(K_B33, (H, W), size_HW)
    target, sources = frames_BSCHW[:, 1], (frames_BSCHW[:, 0], frames_BSCHW[:, 2])
    stats = ssim_stats(target)
    identity = None
    if cfg.use_automask:
        identity = torch.cat([photometric_error(s, target, ssim_weight=cfg.ssim_weight, target_stats=stats)
                              for s in sources], dim=1)
    return _LossView(target=target, sources=sources, K_B33=K_B33, stats=stats, identity=identity)


def compute_loss(out: NetOutputs, batch, cfg: LossConfig, *, min_depth: float, max_depth: float,
                 motion_scale: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The RM-Depth loss of one batch from the networks' outputs -> (scalar loss, logs)."""
    frames, K = batch.frames_BSCHW, batch.K_B33
    target = frames[:, 1]
    B, _, H, W = target.shape
    sources = (frames[:, 0], frames[:, 2])
    poses = (out.T_B44[:B], out.T_B44[B:])
    motions = (None, None) if out.motion_B3HW is None else (out.motion_B3HW[:B], out.motion_B3HW[B:])

    views: dict[tuple[int, int], _LossView] = {}
    photometric = target.new_zeros(())
    smoothness = target.new_zeros(())
    automask = full0 = None
    for scale in range(cfg.num_scales):
        disp = out.disps[scale]
        size = (H, W) if cfg.scale_resolution == "full" else (disp.shape[-2], disp.shape[-1])
        if size not in views:
            views[size] = _loss_view(frames, K, size, cfg)
        view = views[size]
        disp_s = disp if disp.shape[-2:] == size else F.interpolate(disp, size=size, mode="bilinear", align_corners=False)
        depth = disp_to_depth(disp_s, min_depth=min_depth, max_depth=max_depth)
        motions_s = tuple(None if m is None else resize_field(m, size) for m in motions)
        reproj = _reprojection(view.sources, poses, motions_s, depth, view.K_B33, view.target, view.stats, cfg)
        loss_s, mask_s = min_reprojection_loss(reproj, view.identity, use_min=cfg.use_min_reprojection)
        if scale == 0:
            automask, full0 = mask_s, reproj
        image_s = view.target if size == disp.shape[-2:] else F.interpolate(target, size=disp.shape[-2:], mode="area")
        photometric = photometric + loss_s
        smoothness = smoothness + cfg.smoothness_weight / (2**scale) * smoothness_loss(disp, image_s)
    photometric = photometric / cfg.num_scales
    smoothness = smoothness / cfg.num_scales
    ground = target.new_zeros(())
    if cfg.ground_bound_weight > 0:
        ground = cfg.ground_bound_weight * ground_bound_loss(out.depth_B1HW, K)
    for disp in out.disps[cfg.num_scales :]:
        # Keep unused heads in the graph (zero gradient) so DDP without find_unused_parameters works.
        smoothness = smoothness + 0.0 * disp.mean()

    motion_reg = target.new_zeros(())
    outlier_fraction = 0.0
    if cfg.motion_regularizer != "none" and out.motion_B3HW is not None:
        total = out.motion_B3HW + out.T_B44[:, :3, 3, None, None]  # object + camera translation (Li et al.)
        if cfg.motion_regularizer == "li_sparsity":
            motion_reg = cfg.li_smoothness_weight * li_motion_regularizer(out.motion_B3HW, total)
        else:
            assert full0 is not None  # set at scale 0
            outliers = _outliers(out, sources, poses, full0, K, target, views[(H, W)].stats, cfg)
            outlier_fraction = float(outliers.mean())
            motion_reg = cfg.motion_reg_weight * outlier_aware_regularizer(out.motion_B3HW, total, outliers)

    velocity = target.new_zeros(())
    gt_T = getattr(batch, "gt_T_BS44", None)
    if cfg.velocity_weight > 0 and gt_T is not None:
        gt_t2s = torch.cat([gt_T[:, 0], gt_T[:, 2]])  # same row order as out.T_B44
        velocity = cfg.velocity_weight * velocity_loss(out.T_B44, gt_t2s)

    loss = photometric + smoothness + ground + motion_reg + velocity
    assert automask is not None
    logs = {
        "loss": float(loss.detach()),
        "photometric": float(photometric.detach()),
        "smoothness": float(smoothness.detach()),
        "ground_bound": float(ground.detach()),
        "motion_reg": float(motion_reg.detach()),
        "velocity": float(velocity.detach()),
        "automask_fraction": float(automask.mean()),
        "outlier_fraction": outlier_fraction,
        "motion_scale": motion_scale,
        **_diagnostics(out, gt_T, min_depth=min_depth, max_depth=max_depth),
    }
    return loss, logs


def _outliers(out: NetOutputs, sources, poses, full_BSHW: torch.Tensor, K, target, stats: SSIMStats,
              cfg: LossConfig) -> torch.Tensor:
    """Eq. 12's mask over the (2B) rows: rigid-warp outliers that the object motion explains. The full warp's
    error is the loss's own at scale 0 (`full_BSHW`, one column per source); only the rigid warp is extra."""
    with torch.no_grad():
        depth0 = out.depth_B1HW.detach()
        e_cam = _reprojection(sources, [T.detach() for T in poses], (None, None), depth0, K, target, stats, cfg)
        to_rows = lambda e_BSHW: torch.cat(e_BSHW.unbind(dim=1))[:, None]  # noqa: E731  (S*B, 1, H, W)
        return outlier_mask(to_rows(e_cam), to_rows(full_BSHW.detach()), sigma=cfg.outlier_sigma)


def _diagnostics(out: NetOutputs, gt_T_BS44, *, min_depth: float, max_depth: float) -> dict[str, float]:
    """What shows a collapsing run early (learning-notes.md): forward translation and spread of the pose across the
    batch, share of pixels at the depth floor/ceiling, and, where the batch has the true motion, the cosine of
    predicted vs true translation and the ratio of their lengths."""
    with torch.no_grad():
        B = out.depth_B1HW.shape[0]
        t_next = out.T_B44[B:, :3, 3]
        depth = out.depth_B1HW
        logs = {
            "mean_depth": float(depth.mean()),
            "depth_floor_fraction": float((depth <= min_depth * 1.05).float().mean()),
            "depth_ceiling_fraction": float((depth >= max_depth * 0.95).float().mean()),
            "pose_forward": float(-t_next[:, 2].mean()),
            "pose_spread": float(t_next.std(dim=0, unbiased=False).norm()) if B > 1 else 0.0,
            "cam_translation": float(out.T_B44[:, :3, 3].norm(dim=1).mean()),
            "object_motion": 0.0 if out.motion_B3HW is None else float(channel_norm(out.motion_B3HW).mean()),
        }
        if gt_T_BS44 is not None:
            gt = torch.cat([gt_T_BS44[:, 0], gt_T_BS44[:, 2]])[:, :3, 3]
            pred = out.T_B44[:, :3, 3]
            known = torch.isfinite(gt).all(dim=1) & (gt.norm(dim=1) > 1e-3)
            if bool(known.any()):
                g, p = gt[known], pred[known]
                logs["pose_cosine"] = float(F.cosine_similarity(p, g, dim=1).mean())
                logs["pose_length_ratio"] = float((p.norm(dim=1) / g.norm(dim=1)).mean())
    return logs


def visuals(out: NetOutputs, K_B33: torch.Tensor) -> Visuals:
    """Depth, object motion, optical flow and moving mask towards the next frame (for TensorBoard and reports)."""
    with torch.no_grad():
        B = out.depth_B1HW.shape[0]
        depth = out.depth_B1HW.detach()
        field = torch.zeros_like(depth).expand(-1, 3, -1, -1) if out.motion_B3HW is None else out.motion_B3HW[B:].detach()
        return Visuals(
            depth_B1HW=depth,
            motion_field_B3HW=field,
            flow_B2HW=optical_flow(depth, K_B33, out.T_B44[B:].detach(), field),
            moving_mask_B1HW=moving_mask(field),
        )


def forward_loss(nets: nn.Module, batch, cfg: LossConfig, *, step: int, total_steps: int = 0,
                 compute_dtype: torch.dtype | None = None) -> StepOutput:
    """Forward both networks on a batch of triplets (nets may be DDP-wrapped; its forward is called once) and
    compute the loss; `step`/`total_steps` place the object-motion burn-in. `compute_dtype` (torch.bfloat16)
    runs the networks' convolutions in mixed precision (autocast); their outputs, the geometry and the loss stay
    float32."""
    inner = unwrap(nets)
    assert isinstance(inner, RMDepthNets), f"forward_loss expects RMDepthNets (or a wrapper), got {type(inner).__name__}"
    depth_cfg = inner.depth.cfg
    motion_scale = cfg.motion_scale(step, total_steps)
    frames = batch.frames_aug_BSCHW
    with torch.autocast(frames.device.type, dtype=compute_dtype or torch.float32, enabled=compute_dtype is not None):
        out: NetOutputs = nets(frames, batch.K_B33, motion_scale)
    loss, logs = compute_loss(out, batch, cfg, min_depth=depth_cfg.min_depth, max_depth=depth_cfg.max_depth,
                              motion_scale=motion_scale)
    return StepOutput(loss=loss, logs=logs, outputs=out)


def train_step(nets: nn.Module, optimizer: torch.optim.Optimizer, batch, cfg: LossConfig, *, step: int,
               total_steps: int = 0, grad_clip_norm: float = 0.0, compute_dtype: torch.dtype | None = None) -> StepOutput:
    """Forward, backward and one optimizer step. A non-finite loss raises FloatingPointError after the backward
    pass (so DDP ranks are not left waiting in the gradient all-reduce) and before the weights change."""
    out = forward_loss(nets, batch, cfg, step=step, total_steps=total_steps, compute_dtype=compute_dtype)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    if not torch.isfinite(out.loss):
        raise FloatingPointError(f"loss is {float(out.loss)} at step {step}")
    if grad_clip_norm > 0:
        out.logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(unwrap(nets).parameters(), grad_clip_norm))
    optimizer.step()
    return out
