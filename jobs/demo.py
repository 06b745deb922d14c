"""The whole flow on one machine, no cluster, no S3 account, no GPU: synthetic KITTI- and Cityscapes-format worlds ->
WebDataset shards (Ray tasks) -> RM-Depth training (Ray Train, 2 CPU workers) -> distributed evaluation (Ray) ->
a report (report.md, report.html) with metrics, pictures, the loss curve and the commands for a real cluster.

  rmdepth demo                       # local files under work/demo
  rmdepth demo --s3                  # the same through s3:// URLs on a local S3-compatible server (moto)
  rmdepth demo --quick               # the smallest settings (what CI runs)

Every stage is idempotent: rerunning the command reuses finished worlds and shard sets and resumes training from the
run's latest checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from jobs.cli import run_module


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default="work/demo", help="local folder for worlds, shards, runs and the report")
    p.add_argument("--s3", action="store_true",
                   help="start a local S3-compatible server (moto on 127.0.0.1) and keep shards, checkpoints and "
                        "evaluation outputs on s3:// URLs")
    p.add_argument("--quick", action="store_true",
                   help="smallest settings (fewer frames and steps): checks the flow, does not learn much")
    p.add_argument("--workers", type=int, default=2, help="Ray workers for sharding, training and evaluation")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic worlds and of training")
    p.add_argument("--loader", default="dali", choices=("dali", "reference"),
                   help="training loader: DALI (CPU backend here; the same graph decodes on the GPU) or reference")
    p.add_argument("--no-pretrain", action="store_true",
                   help="skip the Cityscapes pretraining stage (train on the KITTI-format world only)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the tiny_cpu training config, e.g. --set train.epochs=2 (repeatable)")


def run(args: argparse.Namespace) -> int:
    from jobs.demo_flow import DemoOptions, run_demo
    from jobs.errors import UsageError

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    opts = DemoOptions(
        workdir=args.workdir,
        use_s3=args.s3,
        quick=args.quick,
        workers=args.workers,
        seed=args.seed,
        loader=args.loader,
        pretrain=not args.no_pretrain,
        overrides=tuple(args.overrides),
    )
    report = run_demo(opts)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__], prog="python -m jobs.demo"))
