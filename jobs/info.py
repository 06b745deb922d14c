"""Print the parameter counts of the depth and motion networks (optionally with ablation switches set).

Examples:
  rmdepth info
  rmdepth info --breakdown --set depth.use_modulation=false --set motion.use_object_motion=false
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from jobs.cli import run_module
from jobs.errors import UsageError
from model.config import DepthNetConfig, MotionNetConfig  # light: dataclasses only, no torch

PAPER_DEPTH_PARAMS = 2.97e6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a model config field, e.g. depth.rmu_steps=1,1,1, depth.use_rmu=false, "
        "depth.norm=group, motion.use_warping=false (repeatable)",
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="also list the parameters of each sub-module"
    )


@dataclass(frozen=True, kw_only=True)
class ModelConfigs:
    depth: DepthNetConfig = field(default_factory=DepthNetConfig)
    motion: MotionNetConfig = field(default_factory=MotionNetConfig)


def format_counts(depth_cfg, motion_cfg, *, breakdown: bool = False) -> str:
    """A markdown table of parameter counts for the given network configs."""
    from model.depth_net import DepthNet, num_parameters
    from model.motion_net import MotionNet

    depth = DepthNet(depth_cfg)
    motion = MotionNet(motion_cfg)
    n_depth, n_motion = num_parameters(depth), num_parameters(motion)
    rows = [
        ("depth net", n_depth, f"{n_depth / PAPER_DEPTH_PARAMS - 1:+.1%} vs the paper's 2.97M"),
        ("motion net", n_motion, ""),
        ("total", n_depth + n_motion, ""),
    ]
    if breakdown:
        for prefix, net in (("depth", depth), ("motion", motion)):
            for name, child in net.named_children():
                rows.append((f"  {prefix}.{name}", num_parameters(child), ""))
    lines = ["| module | parameters | note |", "|---|---:|---|"]
    lines += [f"| {name} | {count:,} | {note} |" for name, count, note in rows]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from engine.config_io import apply_overrides, to_json

    try:
        cfg = apply_overrides(ModelConfigs(), args.overrides)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(format_counts(cfg.depth, cfg.motion, breakdown=args.breakdown))
    if args.overrides:
        print("\nresolved model config:")
        print(to_json(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
