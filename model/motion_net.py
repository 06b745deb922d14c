"""RM-Depth motion network (Fig. 4): shared encoder, ego-motion decoder, coarse-to-fine 3D object motion field.

Shape legend: B batch (one row per target/source pair), H, W input resolution; encoder level l (1..3) has
resolution ceil(H / 2^l) (level 1 at 1/2 resolution to save memory, spec 2.2 [I]).

Pass 1: E = enc(cat[I_t, I_s]) -> pose decoder -> (axis-angle, translation) * 0.01 -> T_t->s.
Pass 2 (use_warping): for level 3, 2, 1: warp I_s into the target with D_t, T_t->s and the current object motion
field (zero at level 3), re-encode cat[I_t, I_s->t] up to that level, and predict a zero-initialised residual
field added to the (bilinearly, not value-scaled) upsampled coarser field. Without warping the three levels read
the features of pass 1. The field is a per-pixel metric translation added after the camera motion
(P' = R P + t + T_obj(x)), as in Li et al. 2020.
[I] The warps that build the network's input run under no_grad: gradients reach depth and pose through the loss's
own warps, not through the motion net's input.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import MotionNetConfig
from model.geometry import pose_vec_to_mat, warp
from model.layers import conv_block

_MEAN = 0.45
_STD = 0.225


class MotionOutput(NamedTuple):
    T_B44: torch.Tensor
    """Camera motion T_target->source."""
    motion_B3HW: torch.Tensor
    """Object motion field at the input resolution (metres, source camera frame), already multiplied by motion_scale."""


class MotionEncoder(nn.Module):
    def __init__(self, channels: tuple[int, int, int], *, norm: str) -> None:
        super().__init__()
        cins = (6, channels[0], channels[1])
        self.levels = nn.ModuleList(
            nn.Sequential(conv_block(cin, cout, stride=2, norm=norm), conv_block(cout, cout, norm=norm))
            for cin, cout in zip(cins, channels, strict=True)
        )

    def forward(self, pair_B6HW: torch.Tensor, *, num_levels: int = 3) -> list[torch.Tensor]:
        feats = []
        x = (pair_B6HW - _MEAN) / _STD
        for level in self.levels[:num_levels]:
            x = level(x)
            feats.append(x)
        return feats


class PoseDecoder(nn.Module):
    """Three stride-2 convs, a 1x1 conv to 6, global average pooling, x pose_scale (Monodepth2 idiom)."""

    def __init__(self, cin: int, width: int, *, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.convs = nn.Sequential(
            conv_block(cin, width, stride=2),
            conv_block(width, width, stride=2),
            conv_block(width, width, stride=2),
            nn.Conv2d(width, 6, 1),
        )

    def forward(self, feat_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_B6 = self.convs(feat_BCHW).mean(dim=(2, 3)) * self.scale
        return out_B6[:, :3], out_B6[:, 3:]


class MotionLevel(nn.Module):
    """cat[E_l, T_up] -> 2x conv3x3 -> conv3x3 -> 3-channel residual, zero-initialised (so training starts rigid)."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_block(cin + 3, width), conv_block(width, width))
        self.out = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, feat_BCHW: torch.Tensor, up_B3HW: torch.Tensor) -> torch.Tensor:
        return up_B3HW + self.out(self.convs(torch.cat([feat_BCHW, up_B3HW], dim=1)))


def _resize(field_B3HW: torch.Tensor, size_HW: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a metric 3D field: values are NOT scaled (unlike optical flow)."""
    if tuple(field_B3HW.shape[-2:]) == tuple(size_HW):
        return field_B3HW
    return F.interpolate(field_B3HW, size=size_HW, mode="bilinear", align_corners=False)


class MotionNet(nn.Module):
    def __init__(self, cfg: MotionNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = MotionEncoder(cfg.encoder_channels, norm=cfg.norm)
        self.pose = PoseDecoder(cfg.encoder_channels[2], cfg.pose_channels, scale=cfg.pose_scale)
        # index 0 = level 1 (finest) .. 2 = level 3 (coarsest)
        self.object_levels = (
            nn.ModuleList(MotionLevel(c, cfg.motion_channels) for c in cfg.encoder_channels)
            if cfg.use_object_motion
            else None
        )

    def forward(
        self,
        target_B3HW: torch.Tensor,
        source_B3HW: torch.Tensor,
        depth_B1HW: torch.Tensor,
        K_B33: torch.Tensor,
        *,
        motion_scale: float = 1.0,
    ) -> MotionOutput:
        """Camera motion T_target->source and the object motion field of the target pixels.

        Args:
            target_B3HW, source_B3HW: network-input images in [0, 1].
            depth_B1HW: target depth (metres) at the same resolution (only used, detached, for re-warping).
            K_B33: intrinsics at that resolution.
            motion_scale: burn-in multiplier of the object motion field (0 = camera only).
        """
        feats = self.encoder(torch.cat([target_B3HW, source_B3HW], dim=1))
        axis_angle_B3, translation_B3 = self.pose(feats[2])
        T_B44 = pose_vec_to_mat(axis_angle_B3, translation_B3)
        H, W = target_B3HW.shape[-2:]
        if self.object_levels is None:
            return MotionOutput(T_B44=T_B44, motion_B3HW=target_B3HW.new_zeros(target_B3HW.shape[0], 3, H, W))

        field = None  # current estimate at the last level's resolution (unscaled)
        for level in (3, 2, 1):
            if self.cfg.use_warping:
                with torch.no_grad():
                    motion_full = None if field is None else motion_scale * _resize(field, (H, W))
                    warped, _ = warp(source_B3HW, depth_B1HW.detach(), K_B33, T_B44.detach(), motion_full)
                level_feats = self.encoder(torch.cat([target_B3HW, warped], dim=1), num_levels=level)
                feat = level_feats[level - 1]
            else:
                feat = feats[level - 1]
            up = (
                feat.new_zeros(feat.shape[0], 3, *feat.shape[-2:])
                if field is None
                else _resize(field, feat.shape[-2:])
            )
            field = self.object_levels[level - 1](feat, up)
        assert field is not None
        return MotionOutput(T_B44=T_B44, motion_B3HW=motion_scale * _resize(field, (H, W)))
