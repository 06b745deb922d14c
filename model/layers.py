"""Building blocks shared by the depth and motion networks: conv blocks, residual upsampling, the RMU.

Shape legend: B batch, C channels, H height, W width (of the tensor at hand).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def normalize_image(x_BCHW: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> the networks' input scale: (x - 0.45) / 0.225 (Monodepth2's constants)."""
    return (x_BCHW - 0.45) / 0.225


def full_precision(like: torch.Tensor) -> torch.autocast:
    """A region that runs in float32 inside a mixed-precision forward (`train.precision=bf16`): geometry (pose
    matrices, warps) needs float32 where the convolutions do not."""
    return torch.autocast(like.device.type, enabled=False)


def make_norm(norm: str, channels: int) -> nn.Module:
    """'batch' -> BatchNorm2d, 'group' -> GroupNorm (8 channels per group or fewer groups), 'none' -> Identity."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        groups = max(1, channels // 8)
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}")


def conv_block(cin: int, cout: int, *, kernel: int = 3, stride: int = 1, norm: str = "none") -> nn.Sequential:
    """Conv -> norm -> LeakyReLU(0.1) (LiteFlowNet's activation). No conv bias when a norm follows."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=norm == "none"),
        make_norm(norm, cout),
        nn.LeakyReLU(0.1, inplace=True),
    )


class ResidualUpsample(nn.Module):
    """x2 upsampling with one transposed-conv filter set per frequency band (spec 1.4, eq. 10).

    low = AvgPool3x3(x) (low-pass), high = x - low (the residual band); out = ConvT_L(low) + ConvT_H(high).
    With use_residual=False a single ConvT4x4 s2 (the ablation). The output is cropped to `size_HW`, so input
    sizes that are not multiples of the pyramid stride work (ceil-sized coarser levels).
    """

    def __init__(self, cin: int, cout: int, *, use_residual: bool = True) -> None:
        super().__init__()
        self.up_low = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        self.up_high = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1) if use_residual else None
        self.box_CK33: torch.Tensor
        self.register_buffer("box_CK33", torch.full((cin, 1, 3, 3), 1.0 / 9.0), persistent=False)  # not in checkpoints

    def forward(self, x_BCHW: torch.Tensor, size_HW: tuple[int, int]) -> torch.Tensor:
        if self.up_high is None:
            out = self.up_low(x_BCHW)
        else:
            low = box_filter3(x_BCHW, self.box_CK33)
            out = self.up_low(low) + self.up_high(x_BCHW - low)
        return out[..., : size_HW[0], : size_HW[1]]


def box_filter3(x_BCHW: torch.Tensor, box_CK33: torch.Tensor) -> torch.Tensor:
    """3x3 mean over the pixels inside the image (= avg_pool2d(x, 3, 1, 1, count_include_pad=False)), as a
    depthwise convolution with the (C, 1, 3, 3) kernel `box_CK33` of 1/9s, times 9 / (in-image pixels of each
    window): 2-6x faster than avg_pool2d on a CPU."""
    low = F.conv2d(x_BCHW, box_CK33, padding=1, groups=box_CK33.shape[0])
    inside_11HW = F.conv2d(x_BCHW.new_ones((1, 1, *x_BCHW.shape[-2:])), torch.ones_like(box_CK33[:1]), padding=1)
    return low * (9.0 / inside_11HW)


class RMU(nn.Module):
    """Recurrent Modulation Unit (Fig. 3): K steps with weights shared across steps.

    (4a) [w, b] = conv_a(cat[F, h])            (4b) F' = tanh(conv_b(w * F + b))
    (5a) z = sigmoid(conv_c(cat[h, F']))        (5b) h = (1 - z) * h + z * F'
    use_modulation=False: F' = tanh(conv_b(F)) (the "w/o modulation" ablation; conv_a is not built).
    """

    def __init__(
        self, enc_channels: int, hidden_channels: int, *, steps: int, use_modulation: bool = True
    ) -> None:
        super().__init__()
        self.steps = steps
        ce, ch = enc_channels, hidden_channels
        self.conv_a = nn.Conv2d(ce + ch, 2 * ce, 3, padding=1) if use_modulation else None
        self.conv_b = nn.Conv2d(ce, ch, 3, padding=1)
        self.conv_c = nn.Conv2d(ch + ch, ch, 3, padding=1)

    def forward(self, feat_BCHW: torch.Tensor, h_BCHW: torch.Tensor) -> torch.Tensor:
        if self.conv_a is None:
            f_prime = torch.tanh(self.conv_b(feat_BCHW))  # no modulation: F' is the same at every step
            for _ in range(self.steps):
                h_BCHW = self._update(h_BCHW, f_prime)
            return h_BCHW
        # conv_a(cat[F, h]) = conv(F; W_F) + conv(h; W_h) (convolution is linear): the F half is the same at
        # every step, so it is computed once. Same parameters and result as the concat form, fewer FLOPs.
        ce = feat_BCHW.shape[1]
        a_feat = F.conv2d(feat_BCHW, self.conv_a.weight[:, :ce], self.conv_a.bias, padding=1)
        for _ in range(self.steps):
            a = a_feat + F.conv2d(h_BCHW, self.conv_a.weight[:, ce:], None, padding=1)
            w, b = a.chunk(2, dim=1)
            h_BCHW = self._update(h_BCHW, torch.tanh(self.conv_b(w * feat_BCHW + b)))
        return h_BCHW

    def _update(self, h_BCHW: torch.Tensor, f_prime_BCHW: torch.Tensor) -> torch.Tensor:
        """The gated update h <- (1 - z) h + z F', z = sigmoid(conv_c(cat[h, F']))."""
        z = torch.sigmoid(self.conv_c(torch.cat([h_BCHW, f_prime_BCHW], dim=1)))
        return (1.0 - z) * h_BCHW + z * f_prime_BCHW


class ConcatFusion(nn.Module):
    """Conventional fusion (eq. 3, the "w/o RMU" ablation): h = LeakyReLU(norm(conv(cat[F, h0])))."""

    def __init__(self, enc_channels: int, hidden_channels: int, *, norm: str) -> None:
        super().__init__()
        self.block = conv_block(enc_channels + hidden_channels, hidden_channels, norm=norm)

    def forward(self, feat_BCHW: torch.Tensor, h_BCHW: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([feat_BCHW, h_BCHW], dim=1))
