"""Monodepth2-style depth network: a ResNet18 encoder (trained from scratch here, no ImageNet weights) and
Monodepth2's DepthDecoder (nearest upsampling, skip concatenation, ELU, four sigmoid disparity heads).

The baseline the paper compares against (14.3M parameters vs RM-Depth's 2.97M), selectable as `depth.arch=resnet18`
so both are trained by the same pipeline on equal data. Same contract as `model.depth_net.DepthNet`:
`forward(image_B3HW in [0, 1]) -> [disp_B1HW at scale 0 (full res) .. 3 (1/8)]` and `depth(disp)`.

Shape legend: B batch, C channels, H, W input resolution. Input sizes need not be multiples of 32: every upsampled
map is resized to its skip's size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.config import DepthNetConfig
from model.depth_net import init_heads
from model.geometry import disp_to_depth
from model.layers import normalize_image

ENCODER_CHANNELS = (64, 64, 128, 256, 512)
DECODER_CHANNELS = (16, 32, 64, 128, 256)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x_BCHW)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x_BCHW if self.down is None else self.down(x_BCHW)), inplace=True)


class ResNet18Encoder(nn.Module):
    """torchvision's resnet18 layout; features at 1/2 (conv1), 1/4, 1/8, 1/16, 1/32."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layers = nn.ModuleList(
            nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))
            for cin, cout, stride in ((64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2))
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, image_B3HW: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(normalize_image(image_B3HW))), inplace=True)
        feats = [x]
        x = F.max_pool2d(x, 3, 2, 1)
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


def _conv_elu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ELU(inplace=True))


class ResNetDepthNet(nn.Module):
    def __init__(self, cfg: DepthNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = ResNet18Encoder()
        enc, dec = ENCODER_CHANNELS, DECODER_CHANNELS
        self.up0 = nn.ModuleList()
        self.up1 = nn.ModuleList()
        for i in range(4, -1, -1):
            cin = enc[-1] if i == 4 else dec[i + 1]
            self.up0.append(_conv_elu(cin, dec[i]))
            self.up1.append(_conv_elu(dec[i] + (enc[i - 1] if i > 0 else 0), dec[i]))
        self.heads = nn.ModuleList(nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dec[s], 1, 3)) for s in range(4))
        init_heads(self.heads, cfg)

    def forward(self, image_B3HW: torch.Tensor) -> list[torch.Tensor]:
        """Image in [0, 1] -> [disp_B1HW at scale 0 (full res), 1, 2, 3], sigmoid disparities in [0, 1]."""
        H, W = image_B3HW.shape[-2:]
        feats = self.encoder(image_B3HW)
        x = feats[-1]
        disps = []
        for j, i in enumerate(range(4, -1, -1)):
            size = feats[i - 1].shape[-2:] if i > 0 else (H, W)
            x = F.interpolate(self.up0[j](x), size=size, mode="nearest")
            if i > 0:
                x = torch.cat([x, feats[i - 1]], dim=1)
            x = self.up1[j](x)
            if i < 4:
                disps.append(torch.sigmoid(self.heads[i](x)))
        return disps[::-1]

    def depth(self, disp_B1HW: torch.Tensor) -> torch.Tensor:
        return disp_to_depth(disp_B1HW, min_depth=self.cfg.min_depth, max_depth=self.cfg.max_depth)
