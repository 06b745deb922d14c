"""RM-Depth motion network (Fig. 4): shared encoder, ego-motion decoder, coarse-to-fine 3D object motion field.

Shape legend: B batch (one row per image pair), H, W input resolution; encoder level l (1..3) has resolution
ceil(H / 2^l) (level 1 at 1/2 resolution to save memory, spec 2.2 [I]).

Ego-motion (`pose`): E = enc(cat[I_a, I_b]) -> pose decoder -> T_a->b, the motion that maps points of the camera
frame of image a into that of image b. Callers feed pairs in time order (a earlier than b) and invert where they
need the other direction (Monodepth2's recipe), so the net never has to infer temporal order from pixels and the
forward motion of a driving car is one consistent output.
Object motion (`object_motion`, pass 2, use_warping): for level 3, 2, 1: warp I_s into the target with D_t,
T_t->s and the current object motion field (zero at level 3), re-encode cat[I_t, I_s->t] up to that level with the
same encoder, and predict a zero-initialised residual field added to the (bilinearly, not value-scaled) upsampled
coarser field. Without warping the three levels read the features of one pass over cat[I_t, I_s]. The field is a
per-pixel metric translation added after the camera motion (P' = R P + t + T_obj(x)), as in Li et al. 2020.
[I] The warps that build the network's input run under no_grad: gradients reach depth and pose through the loss's
own warps, not through the motion net's input.
MotionNetConfig.field_trains_encoder=False runs pass 2's encoder runs without gradient as well (the encoder then
learns from the pose path only; the field levels still learn).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import MotionNetConfig
from model.geometry import pose_vec_to_mat, warp
from model.layers import conv_block, full_precision, normalize_image


def _kaiming_init(module: nn.Module) -> None:
    """Signal-preserving init for conv -> LeakyReLU(0.1) stacks (PyTorch's default init shrinks the signal by
    ~2.4x per layer; ten such layers left the pose output nearly independent of its input)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0.1, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


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
        x = normalize_image(pair_B6HW)
        for level in self.levels[:num_levels]:
            x = level(x)
            feats.append(x)
        return feats


class PoseDecoder(nn.Module):
    """Three stride-2 convs, a 1x1 conv to 6, global average pooling (Monodepth2 idiom); the axis-angle and the
    translation are scaled separately (MotionNetConfig.rotation_scale / translation_scale)."""

    def __init__(self, cin: int, width: int, *, norm: str, rotation_scale: float, translation_scale: float,
                 init_forward_motion: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("scale_6", torch.tensor([rotation_scale] * 3 + [translation_scale] * 3), persistent=False)
        self.convs = nn.Sequential(
            conv_block(cin, width, stride=2, norm=norm),
            conv_block(width, width, stride=2, norm=norm),
            conv_block(width, width, stride=2, norm=norm),
            nn.Conv2d(width, 6, 1),
        )
        _kaiming_init(self.convs)
        if init_forward_motion:
            out = cast(nn.Conv2d, self.convs[-1])
            bias = cast(torch.Tensor, out.bias)
            with torch.no_grad():
                out.weight.mul_(0.1)
                bias.zero_()
                bias[5] = -init_forward_motion / translation_scale  # T_earlier->later: points come closer (-z)

    def forward(self, feat_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_B6 = self.convs(feat_BCHW).float().mean(dim=(2, 3)) * self.scale_6
        return out_B6[:, :3], out_B6[:, 3:]


class MotionLevel(nn.Module):
    """cat[E_l, T_up] -> 2x conv3x3 -> conv3x3 -> 3-channel residual, zero-initialised (so training starts rigid)."""

    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(conv_block(cin + 3, width), conv_block(width, width))
        self.out = nn.Conv2d(width, 3, 3, padding=1)
        _kaiming_init(self.convs)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(cast(torch.Tensor, self.out.bias))

    def forward(self, feat_BCHW: torch.Tensor, up_B3HW: torch.Tensor) -> torch.Tensor:
        return up_B3HW + self.out(self.convs(torch.cat([feat_BCHW, up_B3HW.to(feat_BCHW.dtype)], dim=1))).float()


def resize_field(field_B3HW: torch.Tensor, size_HW: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a metric 3D field: values are NOT scaled (unlike optical flow)."""
    if tuple(field_B3HW.shape[-2:]) == tuple(size_HW):
        return field_B3HW
    return F.interpolate(field_B3HW, size=size_HW, mode="bilinear", align_corners=False)


class MotionNet(nn.Module):
    def __init__(self, cfg: MotionNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = MotionEncoder(cfg.encoder_channels, norm=cfg.norm)
        self.pose_decoder = PoseDecoder(
            cfg.encoder_channels[2],
            cfg.pose_channels,
            norm=cfg.norm,
            rotation_scale=cfg.rotation_scale,
            translation_scale=cfg.translation_scale,
            init_forward_motion=cfg.init_forward_motion,
        )
        _kaiming_init(self.encoder)
        # index 0 = level 1 (finest) .. 2 = level 3 (coarsest)
        self.object_levels = (
            nn.ModuleList(MotionLevel(c, cfg.motion_channels) for c in cfg.encoder_channels)
            if cfg.use_object_motion
            else None
        )

    def pose(self, first_B3HW: torch.Tensor, second_B3HW: torch.Tensor) -> torch.Tensor:
        """Camera motion T_first->second (maps points of the first image's camera frame into the second's), T_B44.
        Images are network inputs in [0, 1]; feed pairs in time order."""
        feats = self.encoder(torch.cat([first_B3HW, second_B3HW], dim=1))
        axis_angle_B3, translation_B3 = self.pose_decoder(feats[2])
        with full_precision(translation_B3):
            return pose_vec_to_mat(axis_angle_B3, translation_B3)

    def _field_encoder(self, pair_B6HW: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
        """The shared encoder as the object-motion pass runs it (without gradient unless field_trains_encoder)."""
        with torch.set_grad_enabled(self.cfg.field_trains_encoder and torch.is_grad_enabled()):
            return self.encoder(pair_B6HW, num_levels=num_levels)

    def object_motion(
        self,
        target_B3HW: torch.Tensor,
        source_B3HW: torch.Tensor,
        depth_B1HW: torch.Tensor,
        K_B33: torch.Tensor,
        T_B44: torch.Tensor,
        *,
        motion_scale: float = 1.0,
    ) -> torch.Tensor:
        """Object motion field of the target pixels towards the source, motion_B3HW (metres, source camera frame)
        at the input resolution, multiplied by `motion_scale` (the burn-in ramp).

        Args:
            target_B3HW, source_B3HW: network-input images in [0, 1].
            depth_B1HW: target depth (metres) at the same resolution (only used, detached, for re-warping).
            K_B33: intrinsics at that resolution. T_B44: camera motion T_target->source (detached for re-warping).
        """
        assert self.object_levels is not None, "object_motion needs MotionNetConfig.use_object_motion"
        H, W = target_B3HW.shape[-2:]
        depth, T = depth_B1HW.detach(), T_B44.detach()
        feats = None if self.cfg.use_warping else self._field_encoder(torch.cat([target_B3HW, source_B3HW], dim=1), 3)
        field = None  # current estimate at the last level's resolution (unscaled)
        for level in (3, 2, 1):
            if feats is None:
                with torch.no_grad(), full_precision(depth):
                    motion_full = None if field is None else motion_scale * resize_field(field, (H, W))
                    warped, _ = warp(source_B3HW, depth, K_B33, T, motion_full)
                feat = self._field_encoder(torch.cat([target_B3HW, warped], dim=1), level)[level - 1]
            else:
                feat = feats[level - 1]
            up = feat.new_zeros(feat.shape[0], 3, *feat.shape[-2:]) if field is None else resize_field(field, feat.shape[-2:])
            field = self.object_levels[level - 1](feat, up)
        assert field is not None
        return motion_scale * resize_field(field, (H, W))
