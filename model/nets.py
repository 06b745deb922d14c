"""The depth and motion networks as one module, and the prediction helpers that checkpoints, evaluation and
prediction use.

Shape legend: B batch, S = 3 frames (0 prev, 1 target, 2 next), H, W network resolution.
`RMDepthNets.forward` is the one call a training step makes, so a DDP wrapper around RMDepthNets sees every
parameter used in one forward call.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from model.config import DepthNetConfig, MotionNetConfig
from model.depth_net import DepthNet
from model.geometry import invert_pose
from model.layers import full_precision
from model.motion_net import MotionNet
from model.resnet_depth_net import ResNetDepthNet


class NetOutputs(NamedTuple):
    disps: list[torch.Tensor]
    """Target sigmoid disparities, scale 0 (full resolution) .. 3."""
    depth_B1HW: torch.Tensor
    """Target depth from disps[0] (metres)."""
    T_B44: torch.Tensor
    """(2B) camera motions target->source: rows [0, B) for the prev frame, [B, 2B) for the next frame."""
    motion_B3HW: torch.Tensor | None
    """(2B) object motion fields (already burn-in scaled), same row order; None while the field is off (object
    motion disabled, or burn-in scale 0: no work is done for a field that would be multiplied by zero)."""


def build_depth_net(cfg: DepthNetConfig) -> DepthNet | ResNetDepthNet:
    return ResNetDepthNet(cfg) if cfg.arch == "resnet18" else DepthNet(cfg)


class RMDepthNets(nn.Module):
    """The depth and motion networks as one module (one DDP wrapper, one state_dict)."""

    def __init__(self, depth_cfg: DepthNetConfig, motion_cfg: MotionNetConfig) -> None:
        super().__init__()
        self.depth: DepthNet | ResNetDepthNet = build_depth_net(depth_cfg)
        self.motion: MotionNet = MotionNet(motion_cfg)

    def forward(self, frames_aug_BSCHW: torch.Tensor, K_B33: torch.Tensor, motion_scale: float = 1.0) -> NetOutputs:
        """Depth of the target, camera motion target->prev and target->next, and (when on) object motion.

        The pose net sees each pair in time order: (prev, target) gives T_prev->target, inverted for target->prev;
        (target, next) gives T_target->next. Both pairs go through the net as one batch of 2B.
        """
        prev, target, nxt = frames_aug_BSCHW.unbind(1)
        B = target.shape[0]
        disps = [d.float() for d in self.depth(target)]  # float32 also under mixed precision (train.precision)
        depth = self.depth.depth(disps[0])
        T_ordered = self.motion.pose(torch.cat([prev, target]), torch.cat([target, nxt]))
        with full_precision(T_ordered):
            T_B44 = torch.cat([invert_pose(T_ordered[:B]), T_ordered[B:]])
        motion = None
        if self.motion.object_levels is not None and motion_scale > 0:
            motion = self.motion.object_motion(
                torch.cat([target, target]),
                torch.cat([prev, nxt]),
                torch.cat([depth, depth]),
                torch.cat([K_B33, K_B33]),
                T_B44,
                motion_scale=motion_scale,
            )
        return NetOutputs(disps=disps, depth_B1HW=depth, T_B44=T_B44, motion_B3HW=motion)


def build_nets(depth_cfg: DepthNetConfig, motion_cfg: MotionNetConfig) -> RMDepthNets:
    return RMDepthNets(depth_cfg, motion_cfg)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP (or similar) wrapper; used to read configs and submodules, never to call forward."""
    return getattr(module, "module", module)


def predict_depth(depth_net: nn.Module, image_B3HW: torch.Tensor) -> torch.Tensor:
    """Full-resolution depth (metres) of images in [0, 1]; accepts a depth net, RMDepthNets or a wrapper of either.
    Runs under no_grad; the caller chooses train/eval mode."""
    net = unwrap(depth_net)
    if isinstance(net, RMDepthNets):
        net = net.depth
    assert isinstance(net, (DepthNet, ResNetDepthNet)), f"predict_depth expects a depth net, got {type(net).__name__}"
    with torch.no_grad():
        return net.depth(net(image_B3HW)[0])


def predict_ego_motion(nets: nn.Module, earlier_B3HW: torch.Tensor, later_B3HW: torch.Tensor) -> torch.Tensor:
    """Camera motion T_earlier->later (maps points of the earlier frame's camera into the later one's; the entries
    of monodepth2's evaluate_pose.py), T_B44 float. Images in [0, 1]; runs under no_grad."""
    net = unwrap(nets)
    motion = net.motion if isinstance(net, RMDepthNets) else net
    assert isinstance(motion, MotionNet), f"predict_ego_motion expects RMDepthNets or MotionNet, got {type(net).__name__}"
    with torch.no_grad():
        return motion.pose(earlier_B3HW, later_B3HW)
