"""Depth-network inference latency: RM-Depth's depth net vs a Monodepth2-style ResNet18 encoder-decoder.

Both run in the same process, interleaved iteration by iteration (so load from other processes hits both
equally), batch 1, eval mode, torch.no_grad, after a warm-up; the table reports the median of N runs and the ratio,
and the multiply-accumulates of one forward pass (torch.utils.flop_counter: convolutions and matmuls only).
The baseline is `depth.arch=resnet18` (model/resnet_depth_net.py, plain torch): a ResNet18 encoder (no ImageNet
weights needed for timing) and Monodepth2's DepthDecoder (nearest upsampling, skip concat, ELU, 4 sigmoid heads).

  .venv/bin/python benchmarks/bench_depth_net.py --width 640 --height 192 --iters 20 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model.config import DepthNetConfig  # noqa: E402
from model.depth_net import DepthNet, num_parameters  # noqa: E402
from model.resnet_depth_net import ResNetDepthNet  # noqa: E402


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def _time_once(net: nn.Module, x: torch.Tensor) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    net(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument(
        "--iters", type=int, default=20, help="timed iterations per network (median reported)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    nets = {
        "RM-Depth depth net (this repo)": DepthNet(DepthNetConfig()).to(device).eval(),
        "Monodepth2 ResNet18 (baseline)": ResNetDepthNet(DepthNetConfig(arch="resnet18")).to(device).eval(),
    }
    x = torch.rand(1, 3, args.height, args.width, device=device)
    times: dict[str, list[float]] = {name: [] for name in nets}
    gmacs = {}
    with torch.no_grad():
        for name, net in nets.items():
            with FlopCounterMode(display=False) as counter:
                assert net(x)[0].shape == (1, 1, args.height, args.width)
            gmacs[name] = counter.get_total_flops() / 2e9
            for _ in range(args.warmup):
                net(x)
        for _ in range(args.iters):
            for name, net in nets.items():
                times[name].append(_time_once(net, x))
    base = statistics.median(times["Monodepth2 ResNet18 (baseline)"])
    where = _cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(
        f"{args.width}x{args.height}, batch 1, eval, no_grad, {args.iters} iters after {args.warmup} warm-up, "
        f"device {device.type} ({where}), torch {torch.__version__}, {args.threads} threads"
    )
    print()
    print("| network | parameters | GMACs | median latency (ms) | min (ms) | latency / baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, net in nets.items():
        med = statistics.median(times[name])
        print(
            f"| {name} | {num_parameters(net):,} | {gmacs[name]:.1f} | {1000 * med:.1f} | {1000 * min(times[name]):.1f} | "
            f"{med / base:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
