"""Export the depth network of a checkpoint to ONNX and check it against PyTorch with onnxruntime.

  rmdepth export-onnx --checkpoint URL --out model.onnx [--output depth|disparity] [--tolerance 1e-4]

The graph maps `image` (N x 3 x H x W float32 RGB in [0, 1], H x W = the training size unless --height/--width)
to `depth` (N x 1 x H x W metres, the model's min..max depth range) or `disparity` (sigmoid output in [0, 1]);
the batch dimension is dynamic. After export, onnxruntime runs random inputs (batch 1 and 2) and the max absolute
difference to PyTorch is printed; the command fails if it exceeds --tolerance (the .onnx file is then not written).
"""

from __future__ import annotations

import argparse
import sys

from jobs.cli import run_module
from jobs.errors import JobError, UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or URL")
    parser.add_argument("--out", required=True, help="output .onnx path (local or URL)")
    parser.add_argument("--output", choices=("depth", "disparity"), default="depth", help="graph output (default depth)")
    parser.add_argument("--height", type=int, default=0, help="input height (default: the checkpoint's training height)")
    parser.add_argument("--width", type=int, default=0, help="input width (default: the checkpoint's training width)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset version (default 18)")
    parser.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo",
                        help="torch.onnx exporter: dynamo (torch.export, the default) or the legacy torchscript one")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="max allowed |onnxruntime - torch| on the output (metres for depth; default 1e-3)")


def build_export_module(depth_net, output: str):
    import torch

    class DepthExport(torch.nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, image):
            disp = self.net(image)[0]
            return self.net.depth(disp) if output == "depth" else disp

    # an ONNX graph has no memory format, and torch.export specialises the batch size of channels-last weights
    return DepthExport(depth_net.to(memory_format=torch.contiguous_format)).eval()


def export(module, path: str, *, height: int, width: int, opset: int, exporter: str, output: str) -> None:
    import warnings

    import torch

    example = (torch.rand(1, 3, height, width),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if exporter == "dynamo":
            torch.onnx.export(module, example, path, input_names=["image"], output_names=[output], opset_version=opset,
                              dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
                              verbose=False)
        else:
            torch.onnx.export(module, example, path, input_names=["image"], output_names=[output], opset_version=opset,
                              dynamo=False, dynamic_axes={"image": {0: "batch"}, output: {0: "batch"}})


def parity(module, path: str, *, height: int, width: int, seed: int = 0) -> tuple[float, float]:
    """(max |onnxruntime - torch|, max |torch|) over random inputs of batch 1 and 2."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst, scale = 0.0, 0.0
    for batch in (1, 2):
        x = torch.rand(batch, 3, height, width, generator=g)
        with torch.no_grad():
            ref = module(x).numpy()
        got = session.run(None, {"image": x.numpy()})[0]
        if got.shape != ref.shape:
            raise JobError(f"{path}: onnxruntime output shape {got.shape} != torch {ref.shape}")
        worst = max(worst, float(np.abs(got - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return worst, scale


def run(args: argparse.Namespace) -> int:
    if args.tolerance <= 0 or args.height < 0 or args.width < 0:
        raise UsageError("--tolerance must be > 0 and --height/--width >= 0")
    import os

    from engine.checkpoint import load_inference_model
    from pipeline import storage

    depth_net, cfg, identity = load_inference_model(args.checkpoint, device="cpu")
    height, width = args.height or cfg.loader.height, args.width or cfg.loader.width
    module = build_export_module(depth_net, args.output)
    with storage.local_tempdir() as tmp:
        path = os.path.join(tmp, "model.onnx")
        export(module, path, height=height, width=width, opset=args.opset, exporter=args.exporter, output=args.output)
        diff, scale = parity(module, path, height=height, width=width)
        print(f"onnxruntime parity: max abs diff {diff:.3e} (max |{args.output}| {scale:.3g}), tolerance {args.tolerance:.1e}")
        if not diff <= args.tolerance:
            raise JobError(f"ONNX parity check failed: {diff:.3e} > {args.tolerance:.1e}; {args.out} not written")
        storage.put_file(path, args.out)
    print(f"wrote {args.out} ({args.output}, input 1x3x{height}x{width}, dynamic batch; checkpoint step {identity.get('step', '?')})")
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
