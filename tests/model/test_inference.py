"""model.inference.for_inference: BatchNorm folded into the convolutions, channels-last weights, same outputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from model.config import DepthNetConfig
from model.depth_net import DepthNet
from model.inference import for_inference
from model.resnet_depth_net import ResNetDepthNet

SMALL = DepthNetConfig(encoder_channels=(8, 8, 16, 16, 24, 32), init_channels=16, rmu_steps=(2, 1, 1))


def _trained_looking(net: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return net


@pytest.mark.parametrize("make", [lambda: DepthNet(SMALL), lambda: ResNetDepthNet(DepthNetConfig(arch="resnet18")),
                                  lambda: DepthNet(DepthNetConfig(norm="group", encoder_channels=(8, 8, 16, 16, 24, 32),
                                                                  init_channels=16, rmu_steps=(1, 1, 1)))])
def test_folded_network_computes_the_same_disparities(make):
    net = _trained_looking(make()).train()
    had_bn = any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    fast = for_inference(net)
    assert net.training and had_bn == any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # a copy
    assert not fast.training and not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(2, 3, 64, 208)
    with torch.no_grad():
        ref = net.eval()(x)
        got = fast(x)
    assert len(got) == len(ref)
    for a, b in zip(got, ref, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=2e-5)
