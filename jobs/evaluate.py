"""Evaluate a checkpoint on eval shards (distributed over Ray workers), or predictions made elsewhere.

  rmdepth eval --checkpoint URL --data EVAL_SHARDS --protocol kitti-eigen --out OUT [--num-workers 2] [--baseline constant]
  rmdepth eval --predictions disps.npy --gt gt_depths.npz --protocol kitti-eigen [--pred-type disparity] [--json m.json]

Workers (plain Ray tasks with rank/world_size) evaluate disjoint parts of the shard set; the driver merges the
per-image rows, checks that every test frame was counted exactly once, and writes metrics.json, per_image.parquet,
grid.png and report.md/.html under --out. --num-workers 0 evaluates in this process without Ray.
"""

from __future__ import annotations

import argparse
import json
import sys

from engine.run_config import MAX_BAD_FRAMES, PROTOCOL_NAMES
from jobs.cli import run_module
from jobs.config_args import add_config_arguments, alias, resolve_config
from jobs.errors import UsageError


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("protocol (flags are aliases of --set overrides; fields in engine/evaluate.py EvalProtocol)")
    g.add_argument("--protocol", choices=PROTOCOL_NAMES, default="",
                   help="named evaluation protocol (default kitti-eigen)")
    add_config_arguments(g, config_help="an EvalProtocol JSON, or the metrics.json of an earlier evaluation (its "
                                        "protocol), instead of --protocol", example="max_depth=50")
    alias(g, "--median-scaling", field="use_median_scaling", value="true", help="per-image median scaling (default on)")
    alias(g, "--no-median-scaling", field="use_median_scaling", value="false", help="off, for metric/stereo models")
    alias(g, "--scale-factor", field="scale_factor", help="fixed depth multiplier, e.g. 5.4 for stereo models (default 1)")
    alias(g, "--post-process", field="use_post_process", value="true",
          help="monodepth2 flip post-processing of the disparity (checkpoints only)")
    alias(g, "--no-post-process", field="use_post_process", value="false", help="no flip post-processing (default)")
    alias(g, "--min-depth", field="min_depth", help="lower GT cap and prediction clamp in metres (default 1e-3)")
    alias(g, "--max-depth", field="max_depth", help="upper GT cap and prediction clamp in metres (default 80)")
    alias(g, "--crop", field="crop", help="evaluation crop: garg, cityscapes or none (default: the protocol's)")
    alias(g, "--gt-top-fraction", field="gt_top_fraction",
          help="fraction of GT rows kept from the top: 0.75 for ManyDepth's full-height Cityscapes GT (the default "
               "with --predictions); eval shards already store the cut GT (default 1)")


def protocol_from_args(args: argparse.Namespace):
    """The EvalProtocol of this command line: --protocol NAME or --config FILE, then the overrides."""
    from engine.evaluate import DESCRIPTIVE_SETTINGS, EvalProtocol, make_protocol

    if args.config and args.protocol:
        raise UsageError("give at most one of --protocol NAME or --config FILE")
    base = None if args.config else make_protocol(args.protocol or "kitti-eigen")
    return resolve_config(EvalProtocol, args, base=base, embedded_key="protocol", drop=tuple(DESCRIPTIVE_SETTINGS))


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("workers")
    g.add_argument("--num-workers", type=int, default=1, help="Ray workers, each evaluating a disjoint part (0 = in this process, no Ray)")
    g.add_argument("--batch-size", type=int, default=8, help="eval batch size per worker (default 8)")
    g.add_argument("--device", default="cpu", help="torch device of each worker: cpu or cuda (one GPU per worker)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs reserved per Ray worker (default 1)")
    g.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local cluster)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("model evaluation")
    src.add_argument("--checkpoint", help="checkpoint directory or URL (see engine/checkpoint.py)")
    src.add_argument("--data", help="eval shard set (local dir or URL) written by `rmdepth shard --eval`")
    src.add_argument("--out", help="output dir/URL for metrics.json, per_image.parquet, grid.png, report.md/.html")
    src.add_argument("--baseline", choices=("none", "constant"), default="none", help="also evaluate the median-scaled constant-depth baseline")
    src.add_argument("--grid-samples", type=int, default=4, help="frames shown in the report's image grid (default 4)")
    src.add_argument("--max-bad-frames", type=int, default=MAX_BAD_FRAMES,
                     help="damaged frames (undecodable JPEG, k.f32 or gt.npy) skipped, logged and listed in "
                          f"metrics.json before the evaluation stops with an error naming the shard (default "
                          f"{MAX_BAD_FRAMES}; 0: the first one stops it)")
    ext = parser.add_argument_group("external predictions")
    ext.add_argument("--predictions", help="predictions made elsewhere: .npy (N x H x W) or .npz")
    ext.add_argument("--gt", help="ground truth .npz (rmdepth export-gt or monodepth2 gt_depths.npz)")
    ext.add_argument("--pred-type", choices=("disparity", "depth"), default="disparity", help="what --predictions holds (default disparity)")
    ext.add_argument("--allow-pickle", action="store_true", help="allow pickled object arrays (monodepth2's ragged gt_depths.npz); trusted files only")
    ext.add_argument("--json", help="write the metrics (monodepth2 names) to this JSON file/URL")
    add_protocol_arguments(parser)
    add_worker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.predictions or args.gt:
        return _run_external(args)
    if not (args.checkpoint and args.data and args.out):
        raise UsageError("give --checkpoint, --data and --out (or --predictions and --gt for external predictions)")
    if args.num_workers < 0 or args.batch_size < 1 or args.grid_samples < 0 or args.max_bad_frames < 0:
        raise UsageError("--num-workers must be >= 0, --batch-size >= 1, --grid-samples >= 0, --max-bad-frames >= 0")
    from engine.report import write_eval_outputs
    from jobs.eval_runner import evaluate_checkpoint

    protocol = protocol_from_args(args)
    result = evaluate_checkpoint(
        checkpoint=args.checkpoint,
        data=args.data,
        protocol=protocol,
        num_workers=args.num_workers,
        batch_size=args.batch_size,
        device=args.device,
        cpus_per_worker=args.cpus_per_worker,
        baseline=args.baseline == "constant",
        grid_samples=args.grid_samples,
        ray_address=args.ray_address,
        max_bad_frames=args.max_bad_frames,
    )
    summary = write_eval_outputs(
        args.out,
        metrics=result.metrics,
        rows=result.rows,
        protocol_settings=protocol.settings(),
        checkpoint=result.identity,
        data=args.data,
        baseline=result.baseline,
        baseline_rows=result.baseline_rows,
        samples=result.samples,
        eval_set=result.eval_set,
        skipped=result.skipped,
    )
    _print_metrics(summary["metrics"], summary["baseline"], len(result.rows), len(result.skipped))
    if args.json:
        from pipeline import storage

        storage.write_text(args.json, json.dumps(result.metrics, indent=2))
    print(f"wrote {args.out}/report.md")
    return 0


def _run_external(args: argparse.Namespace) -> int:
    if not (args.predictions and args.gt):
        raise UsageError("--predictions and --gt go together")
    if args.checkpoint or args.data:
        raise UsageError("--predictions/--gt cannot be combined with --checkpoint/--data")
    from engine.evaluate import evaluate_predictions
    from engine.map_files import load_map_list

    if args.protocol == "cityscapes":
        from engine.evaluate import MANYDEPTH_GT_TOP_FRACTION

        # external GT = ManyDepth's full-height gt_depths, unless the command line says otherwise
        args.overrides = [f"gt_top_fraction={MANYDEPTH_GT_TOP_FRACTION}", *args.overrides]
    protocol = protocol_from_args(args)
    if protocol.use_post_process:
        raise UsageError("--post-process needs a checkpoint; external predictions are evaluated as given")
    preds = load_map_list(args.predictions, what="predictions")
    gts = load_map_list(args.gt, what="ground truth", allow_pickle=args.allow_pickle)
    if len(preds) != len(gts):
        raise ValueError(f"{args.predictions} has {len(preds)} predictions but {args.gt} has {len(gts)} GT maps")
    metrics, rows = evaluate_predictions(preds, gts, protocol, pred_type=args.pred_type)
    _print_metrics(metrics, None, len(rows))
    from pipeline import storage

    if args.json:
        storage.write_text(args.json, json.dumps(metrics, indent=2))
    if args.out:
        from engine.report import write_eval_outputs

        write_eval_outputs(
            args.out,
            metrics=metrics,
            rows=rows,
            protocol_settings=protocol.settings(),
            checkpoint={"predictions": args.predictions, "pred_type": args.pred_type},
            data=args.gt,
        )
    return 0


def _print_metrics(metrics: dict, baseline: dict | None, n: int, skipped: int = 0) -> None:
    from model.metrics import METRIC_NAMES

    print(f"{n} images" + (f" ({skipped} damaged frames skipped, listed in metrics.json)" if skipped else ""))
    print(("{:>10}" * (len(METRIC_NAMES) + 1)).format("", *METRIC_NAMES))
    print(("{:>10}" + "{:10.4f}" * len(METRIC_NAMES)).format("model", *[metrics[k] for k in METRIC_NAMES]))
    if baseline:
        print(("{:>10}" + "{:10.4f}" * len(METRIC_NAMES)).format("constant", *[baseline[k] for k in METRIC_NAMES]))


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
