"""`rmdepth` command line: one subcommand per job module.

Each module in COMMANDS defines `add_arguments(parser)` and `run(args) -> int`, and can also be run on its own as
`python -m jobs.<module> ...` (what `ray job submit` uses). Conventions: every path accepts a local path or an fsspec
URL (s3://bucket/prefix, file://...); errors are one line naming the file or option; exit 2 for usage errors, 1 for
failures (any other exception too: its type and first line); set RMDEPTH_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from jobs.errors import JobError, UsageError
from pipeline.storage import RemoteStorageError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("jobs.synth", "render a synthetic street world in the KITTI-raw or Cityscapes file format"),
    "shard": ("jobs.preprocess", "preprocess KITTI/Cityscapes sequences into WebDataset triplet shards (Ray)"),
    "export-gt": ("jobs.export_gt", "write the standard gt_depths.npz for a KITTI split file"),
    "splits": ("jobs.splits", "download or list standard split files"),
    "train": ("jobs.train", "train RM-Depth with Ray Train (elastic, checkpoints on object storage)"),
    "eval": ("jobs.evaluate", "evaluate a checkpoint or external predictions (distributed, Ray)"),
    "eval-pose": ("jobs.eval_pose", "evaluate ego-motion (monodepth2 ATE, KITTI devkit errors) on KITTI odometry/raw"),
    "reeval": ("jobs.reeval", "evaluate every checkpoint under a run prefix that has no result yet"),
    "predict": ("jobs.predict", "predict depth for images, folders and videos"),
    "export-onnx": ("jobs.export_onnx", "export the depth network to ONNX with an onnxruntime parity check"),
    "info": ("jobs.info", "print the model's parameter counts and a preset's resolved config"),
    "demo": ("jobs.demo", "the whole flow on a laptop: synth -> shards -> train -> eval -> report"),
}


def available_commands() -> dict[str, tuple[str, str]]:
    """Commands whose module exists in this checkout."""
    out = {}
    for name, (module, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            out[name] = (module, help_text)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rmdepth",
        description="RM-Depth at scale: synthetic worlds, sharding, DALI loading, Ray Train, evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in available_commands().items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _name=name)
    return parser


def run_module(module, argv: list[str] | None = None, *, prog: str | None = None) -> int:
    """Parse argv for one job module and run it with the CLI's error conventions."""
    name = module.__spec__.name if module.__name__ == "__main__" and module.__spec__ else module.__name__
    parser = argparse.ArgumentParser(prog=prog or name, description=(module.__doc__ or "").strip())
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return _guarded(module.run, args, parser.prog, parser)


def _guarded(fn, args, name: str, parser: argparse.ArgumentParser) -> int:
    try:
        return int(fn(args) or 0)
    except UsageError as e:
        if os.environ.get("RMDEPTH_DEBUG"):
            raise
        parser.print_usage(sys.stderr)
        print(f"{name}: error: {e}", file=sys.stderr)
        return 2
    except (JobError, RemoteStorageError, ValueError, FileNotFoundError, FileExistsError, PermissionError,
            IsADirectoryError, NotADirectoryError) as e:
        if os.environ.get("RMDEPTH_DEBUG"):
            raise
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - anything else is still one line; the traceback on request
        if os.environ.get("RMDEPTH_DEBUG"):
            raise
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
        print(f"{name}: error: {type(e).__name__}: {first} (RMDEPTH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return _guarded(args._run, args, f"rmdepth {args._name}", sub.choices[args._name])


if __name__ == "__main__":
    sys.exit(main())
