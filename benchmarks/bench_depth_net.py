"""Depth-network inference latency: RM-Depth's depth net vs a Monodepth2-style ResNet18 encoder-decoder.

All networks run in the same process, interleaved iteration by iteration (so load from other processes hits all
equally), batch 1, torch.no_grad, after a warm-up; the table reports the median of N runs and the ratio to the
baseline, and the multiply-accumulates of one forward pass (torch.utils.flop_counter: convolutions and matmuls).
Each network is timed as trained (eval mode) and in its inference form (model.inference.for_inference: BatchNorm
folded, channels-last weights; what evaluation, `rmdepth predict` and the ONNX export use), and as an ONNX graph in
ONNX Runtime (exported with jobs/export_onnx.py, same threads). A per-part profile of RM-Depth's multiply-
accumulates follows (where the compute goes). The baseline is `depth.arch=resnet18` (model/resnet_depth_net.py):
a ResNet18 encoder (no ImageNet weights needed for timing) and Monodepth2's DepthDecoder.

  .venv/bin/python benchmarks/bench_depth_net.py --width 640 --height 192 --iters 20 --threads 2 [--first-layout]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from model.config import DepthNetConfig  # noqa: E402
from model.depth_net import DepthNet, num_parameters  # noqa: E402
from model.inference import for_inference  # noqa: E402
from model.resnet_depth_net import ResNetDepthNet  # noqa: E402

BASELINE = "Monodepth2 ResNet18 (baseline), eval"
FIRST_LAYOUT = DepthNetConfig(encoder_channels=(32, 32, 64, 96, 128, 192), init_channels=120)
"""The depth net's first layout (before the issue "Fast RM-Depth"), for the record: --first-layout."""


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def _trained_looking(net: nn.Module) -> nn.Module:
    """BatchNorm statistics away from the identity, so that folding them is not a no-op."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None:
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return net.eval()


def _torch_runner(net: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    return lambda: net(x)


def _onnx_runner(net: nn.Module, x: torch.Tensor, threads: int, tmp: str) -> Callable[[], object]:
    import onnxruntime as ort

    from jobs.export_onnx import build_export_module, export

    path = os.path.join(tmp, f"net{id(net)}.onnx")
    export(build_export_module(net, "disparity"), path, height=x.shape[2], width=x.shape[3], opset=18,
           exporter="dynamo", output="disparity")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # its idle threads would slow torch's
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {"image": x.numpy()}
    return lambda: session.run(None, feed)


def _timed(fn: Callable[[], object], cuda: bool) -> float:
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _macs_by_part(net: nn.Module, x: torch.Tensor) -> tuple[float, dict[str, float]]:
    """(total GMACs, GMACs of each top-level part: encoder levels, h0 path, RMU levels, blocks, upsamplings...)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    parts: dict[str, float] = {}
    for name, counts in counter.get_flop_counts().items():
        path = name.split(".")[1:]  # drop the root module's class name
        if not path:
            continue
        top = getattr(net, path[0])  # ModuleLists (RMU levels, heads, ...) by item, the encoder by level
        depth = 3 if path[0] == "encoder" else 2 if isinstance(top, nn.ModuleList) else 1
        if len(path) == depth:
            parts[".".join(path)] = sum(counts.values()) / 2e9
    return counter.get_total_flops() / 2e9, parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per network (median reported)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime intra-op threads (CPU)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (ONNX Runtime rows only on cpu)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime rows")
    parser.add_argument("--first-layout", action="store_true", help="also time the depth net's first layout")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    rm = _trained_looking(DepthNet(DepthNetConfig())).to(device)
    base = _trained_looking(ResNetDepthNet(DepthNetConfig(arch="resnet18"))).to(device)
    x = torch.rand(1, 3, args.height, args.width, device=device)
    nets: dict[str, nn.Module] = {
        "RM-Depth depth net, eval": rm,
        "RM-Depth depth net, inference form": for_inference(rm),
        BASELINE: base,
        "Monodepth2 ResNet18, inference form": for_inference(base),
    }
    if args.first_layout:
        nets["RM-Depth first layout (21.7 GMACs), eval"] = _trained_looking(DepthNet(FIRST_LAYOUT)).to(device)
    runs: dict[str, Callable[[], object]] = {name: _torch_runner(net, x) for name, net in nets.items()}
    params = {name: num_parameters(net) for name, net in nets.items()}
    gmacs = {name: _macs_by_part(net, x)[0] for name, net in nets.items()}
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        if not args.no_onnx and not cuda:  # what `rmdepth export-onnx` writes: the inference form, exported
            for label in ("RM-Depth depth net", "Monodepth2 ResNet18"):
                source = next(name for name in nets if name.startswith(label) and name.endswith("inference form"))
                name = f"{label}, ONNX Runtime"
                runs[name] = _onnx_runner(nets[source], x, args.threads, tmp)
                params[name], gmacs[name] = params[source], gmacs[source]
        for fn in runs.values():
            for _ in range(args.warmup):
                fn()
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.iters):
            for name, fn in runs.items():
                times[name].append(_timed(fn, cuda))
    base_ms = statistics.median(times[BASELINE])
    where = _cpu_name() if not cuda else torch.cuda.get_device_name(device)
    print(f"{args.width}x{args.height}, batch 1, no_grad, {args.iters} iters after {args.warmup} warm-up, device "
          f"{device.type} ({where}), torch {torch.__version__}, {args.threads} threads")
    print()
    print("| network | parameters | GMACs | median latency (ms) | min (ms) | latency / baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in runs:
        med = statistics.median(times[name])
        print(f"| {name} | {params[name]:,} | {gmacs[name]:.1f} | {1000 * med:.1f} | {1000 * min(times[name]):.1f} | "
              f"{med / base_ms:.2f} |")
    total, parts = _macs_by_part(rm, x)
    print()
    print(f"RM-Depth depth net: where the {total:.2f} GMACs go")
    print()
    print("| part | GMACs | share |")
    print("|---|---:|---:|")
    for name, value in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {value:.3f} | {100 * value / total:.0f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
