"""RM-Depth depth network: LiteFlowNet-NetC-style encoder + decoder of Recurrent Modulation Units.

Shape legend: B batch, C channels, H, W input resolution; level L_l has resolution ceil(H / 2^(l-1)).
Output: sigmoid disparities at 4 scales, index s = 0 (L1, full resolution) .. 3 (L4, 1/8), Monodepth2's order.

Dataflow (spec 1.2-1.5; [I] where the paper text was unavailable):
  E1..E6 = encoder(normalised image)
  h0(L4) = ResUp(conv1x1(cat[ResUp(conv(E6)), E5]))            (eq. 6: h0 from the top encoder feature)
  for level in L4, L3, L2:  h = RMU(E_level, h0)  -> disp head;  h0(next) = ResUp(conv_block(h))
  L1: conv_block(cat[last upsampled feature, E1]) (use_full_res_skip) -> disp head.
[I] choices: input normalised with Monodepth2's (x - 0.45) / 0.225; the E1 skip at L1 (+18k parameters); levels of
inputs that are not multiples of 32 have ceil sizes and every upsampled map is cropped to its skip's size; norm
layers (DepthNetConfig.norm, BatchNorm by default) after encoder/decoder conv blocks, see its docstring.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn as nn

from model.config import DepthNetConfig
from model.geometry import disp_logit, disp_to_depth
from model.layers import RMU, ConcatFusion, ResidualUpsample, conv_block, normalize_image


class DepthEncoder(nn.Module):
    """Six-level pyramid, LiteFlowNet NetC layout (spec 1.3), LeakyReLU(0.1), trained from scratch."""

    def __init__(self, channels: tuple[int, ...], *, norm: str) -> None:
        super().__init__()
        c1, c2, c3, c4, c5, c6 = channels
        self.levels = nn.ModuleList(
            [
                conv_block(3, c1, kernel=7, norm=norm),
                nn.Sequential(
                    conv_block(c1, c2, stride=2, norm=norm),
                    conv_block(c2, c2, norm=norm),
                    conv_block(c2, c2, norm=norm),
                ),
                nn.Sequential(conv_block(c2, c3, stride=2, norm=norm), conv_block(c3, c3, norm=norm)),
                nn.Sequential(conv_block(c3, c4, stride=2, norm=norm), conv_block(c4, c4, norm=norm)),
                conv_block(c4, c5, stride=2, norm=norm),
                conv_block(c5, c6, stride=2, norm=norm),
            ]
        )

    def forward(self, x_B3HW: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for level in self.levels:
            x_B3HW = level(x_B3HW)
            feats.append(x_B3HW)
        return feats


class DepthNet(nn.Module):
    def __init__(self, cfg: DepthNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c1, c2, c3, c4, c5, c6 = cfg.encoder_channels
        ci = cfg.init_channels
        res = cfg.use_residual_upsampling
        self.encoder = DepthEncoder(cfg.encoder_channels, norm=cfg.norm)
        # h0 of L4 from the top encoder feature (eq. 6).
        self.init_conv = conv_block(c6, ci, norm=cfg.norm)
        self.init_up5 = ResidualUpsample(ci, ci, use_residual=res)
        self.init_fuse5 = conv_block(ci + c5, ci, kernel=1, norm=cfg.norm)
        self.init_up4 = ResidualUpsample(ci, c4, use_residual=res)
        # RMU levels L4, L3, L2 with C_h = C_e.
        widths = (c4, c3, c2)
        next_widths = (c3, c2, c1)
        self.fusions = nn.ModuleList()
        self.blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        for ce, cn, steps in zip(widths, next_widths, cfg.rmu_steps, strict=True):
            if cfg.use_rmu:
                self.fusions.append(RMU(ce, ce, steps=steps, use_modulation=cfg.use_modulation))
            else:
                self.fusions.append(ConcatFusion(ce, ce, norm=cfg.norm))
            self.blocks.append(conv_block(ce, ce, norm=cfg.norm))
            self.ups.append(ResidualUpsample(ce, cn, use_residual=res))
        self.fuse1 = conv_block(c1 + c1, c1, norm=cfg.norm) if cfg.use_full_res_skip else None
        # Disparity heads, scale 0 (L1) .. 3 (L4).
        self.heads = nn.ModuleList([nn.Conv2d(c, 1, 3, padding=1) for c in (c1, c2, c3, c4)])
        init_heads(self.heads, cfg)

    def forward(self, image_B3HW: torch.Tensor) -> list[torch.Tensor]:
        """Image in [0, 1] -> [disp_B1HW at scale 0 (full res), 1, 2, 3], sigmoid disparities in [0, 1]."""
        feats = self.encoder(normalize_image(image_B3HW))
        e1, e2, e3, e4, e5, e6 = feats
        x = self.init_up5(self.init_conv(e6), e5.shape[-2:])
        x = self.init_fuse5(torch.cat([x, e5], dim=1))
        h = self.init_up4(x, e4.shape[-2:])
        disps: list[torch.Tensor] = []
        targets = (e3, e2, e1)
        for enc, fusion, block, up, head, nxt in zip(
            (e4, e3, e2),
            self.fusions,
            self.blocks,
            self.ups,
            (self.heads[3], self.heads[2], self.heads[1]),
            targets,
            strict=True,
        ):
            h = fusion(enc, h)
            disps.append(torch.sigmoid(head(h)))
            h = up(block(h), nxt.shape[-2:])
        if self.fuse1 is not None:
            h = self.fuse1(torch.cat([h, e1], dim=1))
        disps.append(torch.sigmoid(self.heads[0](h)))
        return disps[::-1]

    def depth(self, disp_B1HW: torch.Tensor) -> torch.Tensor:
        return disp_to_depth(disp_B1HW, min_depth=self.cfg.min_depth, max_depth=self.cfg.max_depth)


def init_heads(heads: nn.ModuleList, cfg: DepthNetConfig) -> None:
    """Start every disparity head at `cfg.init_depth` (through the bias of its last conv), if set."""
    if not cfg.init_depth:
        return
    bias = disp_logit(cfg.init_depth, min_depth=cfg.min_depth, max_depth=cfg.max_depth)
    for head in heads:
        conv = head if isinstance(head, nn.Conv2d) else cast(nn.Conv2d, cast(nn.Sequential, head)[-1])
        nn.init.constant_(cast(torch.Tensor, conv.bias), bias)


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
