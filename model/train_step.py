"""One self-supervised training step of RM-Depth, and the depth prediction helper used by evaluation.

Shape legend: B batch, S = 3 frames (0 prev, 1 target, 2 next), H, W network resolution.
`batch` is duck-typed like pipeline.batch.Batch (frames_aug_BSCHW, frames_BSCHW, K_B33); model/ does not import
pipeline. The networks' forward is `RMDepthNets.forward`, so a DDP wrapper around RMDepthNets sees every parameter
used in one forward call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import DepthNetConfig, LossConfig, MotionNetConfig
from model.depth_net import DepthNet
from model.geometry import disp_to_depth, moving_mask, optical_flow, warp
from model.losses import (
    li_motion_regularizer,
    min_reprojection_loss,
    outlier_aware_regularizer,
    outlier_mask,
    photometric_error,
    smoothness_loss,
)
from model.motion_net import MotionNet


class NetOutputs(NamedTuple):
    disps: list[torch.Tensor]
    """Target sigmoid disparities, scale 0 (full resolution) .. 3."""
    depth_B1HW: torch.Tensor
    """Target depth from disps[0] (metres)."""
    T_B44: torch.Tensor
    """(2B) camera motions target->source: rows [0, B) for the prev frame, [B, 2B) for the next frame."""
    motion_B3HW: torch.Tensor
    """(2B) object motion fields (already burn-in scaled), same row order."""


class RMDepthNets(nn.Module):
    """The depth and motion networks as one module (one DDP wrapper, one state_dict)."""

    def __init__(self, depth_cfg: DepthNetConfig, motion_cfg: MotionNetConfig) -> None:
        super().__init__()
        self.depth = DepthNet(depth_cfg)
        self.motion = MotionNet(motion_cfg)

    def forward(
        self, frames_aug_BSCHW: torch.Tensor, K_B33: torch.Tensor, motion_scale: float = 1.0
    ) -> NetOutputs:
        target = frames_aug_BSCHW[:, 1]
        disps = self.depth(target)
        depth = self.depth.depth(disps[0])
        pair_target = torch.cat([target, target], dim=0)
        pair_source = torch.cat([frames_aug_BSCHW[:, 0], frames_aug_BSCHW[:, 2]], dim=0)
        motion = self.motion(
            pair_target,
            pair_source,
            torch.cat([depth, depth], dim=0),
            torch.cat([K_B33, K_B33], dim=0),
            motion_scale=motion_scale,
        )
        return NetOutputs(disps=disps, depth_B1HW=depth, T_B44=motion.T_B44, motion_B3HW=motion.motion_B3HW)


def build_nets(depth_cfg: DepthNetConfig, motion_cfg: MotionNetConfig) -> RMDepthNets:
    return RMDepthNets(depth_cfg, motion_cfg)


@dataclass(frozen=True, kw_only=True)
class StepOutput:
    loss: torch.Tensor
    """Scalar to backpropagate."""
    logs: dict[str, float]
    depth_B1HW: torch.Tensor
    """Detached target depth (metres)."""
    motion_field_B3HW: torch.Tensor
    """Detached object motion field target->next source (metres)."""
    flow_B2HW: torch.Tensor
    """Detached optical flow target->next source (pixels)."""
    moving_mask_B1HW: torch.Tensor
    """Detached moving-object mask of the target (from the target->next field)."""


def _unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP (or similar) wrapper; used only to read configs, never to call forward."""
    return getattr(module, "module", module)


def train_step(nets: nn.Module, batch, cfg: LossConfig, *, step: int) -> StepOutput:
    """Forward both networks on a batch of triplets and compute the RM-Depth loss.

    Args:
        nets: RMDepthNets, possibly wrapped (DDP); its forward is called once.
        batch: has frames_aug_BSCHW (network input), frames_BSCHW (loss images) and K_B33.
        cfg: loss configuration; step: global step (object-motion burn-in schedule).
    """
    depth_cfg: DepthNetConfig = _unwrap(nets).depth.cfg
    motion_scale = cfg.motion_scale(step)
    out: NetOutputs = nets(batch.frames_aug_BSCHW, batch.K_B33, motion_scale)

    frames = batch.frames_BSCHW
    K = batch.K_B33
    target = frames[:, 1]
    B, _, H, W = target.shape
    sources = (frames[:, 0], frames[:, 2])
    poses = (out.T_B44[:B], out.T_B44[B:])
    motions = (out.motion_B3HW[:B], out.motion_B3HW[B:])

    identity = None
    if cfg.use_automask:
        identity = torch.cat(
            [photometric_error(s, target, ssim_weight=cfg.ssim_weight) for s in sources], dim=1
        )

    photometric = target.new_zeros(())
    smoothness = target.new_zeros(())
    automask = None
    for scale in range(cfg.num_scales):
        disp = out.disps[scale]
        disp_full = (
            disp if scale == 0 else F.interpolate(disp, size=(H, W), mode="bilinear", align_corners=False)
        )
        depth = disp_to_depth(disp_full, min_depth=depth_cfg.min_depth, max_depth=depth_cfg.max_depth)
        reproj = torch.cat(
            [
                photometric_error(warp(src, depth, K, T, m)[0], target, ssim_weight=cfg.ssim_weight)
                for src, T, m in zip(sources, poses, motions, strict=True)
            ],
            dim=1,
        )
        loss_s, mask_s = min_reprojection_loss(reproj, identity, use_min=cfg.use_min_reprojection)
        if scale == 0:
            automask = mask_s
        image_s = target if scale == 0 else F.interpolate(target, size=disp.shape[-2:], mode="area")
        photometric = photometric + loss_s
        smoothness = smoothness + cfg.smoothness_weight / (2**scale) * smoothness_loss(disp, image_s)
    photometric = photometric / cfg.num_scales
    smoothness = smoothness / cfg.num_scales
    for disp in out.disps[cfg.num_scales :]:
        # Keep unused heads in the graph (zero gradient) so DDP without find_unused_parameters works.
        smoothness = smoothness + 0.0 * disp.mean()

    motion_reg = target.new_zeros(())
    outlier_fraction = 0.0
    if cfg.motion_regularizer != "none" and motion_scale > 0:
        total = out.motion_B3HW + out.T_B44[:, :3, 3, None, None]  # object + camera translation (Li et al.)
        if cfg.motion_regularizer == "li_sparsity":
            motion_reg = cfg.li_smoothness_weight * li_motion_regularizer(out.motion_B3HW, total)
        else:
            depth0 = out.depth_B1HW.detach()
            with torch.no_grad():
                e_cam = torch.cat(
                    [
                        photometric_error(
                            warp(s, depth0, K, T.detach())[0], target, ssim_weight=cfg.ssim_weight
                        )
                        for s, T in zip(sources, poses, strict=True)
                    ]
                )
                e_full = torch.cat(
                    [
                        photometric_error(
                            warp(s, depth0, K, T.detach(), m.detach())[0], target, ssim_weight=cfg.ssim_weight
                        )
                        for s, T, m in zip(sources, poses, motions, strict=True)
                    ]
                )
                outliers = outlier_mask(e_cam, e_full, sigma=cfg.outlier_sigma)
            outlier_fraction = float(outliers.mean())
            motion_reg = cfg.motion_reg_weight * outlier_aware_regularizer(out.motion_B3HW, total, outliers)

    loss = photometric + smoothness + motion_reg

    with torch.no_grad():
        depth_t = out.depth_B1HW.detach()
        field_next = motions[1].detach()
        flow = optical_flow(depth_t, K, poses[1].detach(), field_next)
        moving = moving_mask(field_next)
    assert automask is not None
    logs = {
        "loss": float(loss.detach()),
        "photometric": float(photometric.detach()),
        "smoothness": float(smoothness.detach()),
        "motion_reg": float(motion_reg.detach()),
        "automask_fraction": float(automask.mean()),
        "outlier_fraction": outlier_fraction,
        "motion_scale": motion_scale,
        "mean_depth": float(depth_t.mean()),
        "cam_translation": float(out.T_B44[:, :3, 3].detach().norm(dim=1).mean()),
        "object_motion": float(out.motion_B3HW.detach().norm(dim=1).mean()),
    }
    return StepOutput(
        loss=loss,
        logs=logs,
        depth_B1HW=depth_t,
        motion_field_B3HW=field_next,
        flow_B2HW=flow,
        moving_mask_B1HW=moving,
    )


def predict_depth(depth_net: nn.Module, image_B3HW: torch.Tensor) -> torch.Tensor:
    """Full-resolution depth (metres) of images in [0, 1]; accepts a DepthNet, RMDepthNets or a wrapper of either.
    Runs under no_grad; the caller chooses train/eval mode."""
    net = _unwrap(depth_net)
    if isinstance(net, RMDepthNets):
        net = net.depth
    assert isinstance(net, DepthNet), f"predict_depth expects a DepthNet, got {type(net).__name__}"
    with torch.no_grad():
        return net.depth(net(image_B3HW)[0])
