"""Evaluate every checkpoint under a training storage prefix that has no result yet, and append to a results table.

  rmdepth reeval --runs s3://bucket/runs --data s3://bucket/shards/kitti-eigen-test --protocol kitti-eigen \
      --results s3://bucket/results/reeval [--num-workers 2]

Checkpoints are found as <runs>/<run_name>/checkpoint_*/ (engine/checkpoint.py layout); each (checkpoint, protocol,
eval set) gets one Parquet part with a deterministic name, written atomically, so re-runs, concurrent runs and
runs killed half-way never duplicate or lose rows. Afterwards summary.md and summary_<metric>.png (metric vs step per
run) are rewritten. Scheduled by infra/k8s/raycronjob-reeval.yaml (or the CronJob fallback).
"""

from __future__ import annotations

import argparse
import sys

from jobs.cli import run_module
from jobs.errors import UsageError
from jobs.evaluate import add_protocol_arguments, add_worker_arguments, protocol_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", required=True, help="training storage prefix holding <run>/checkpoint_*/ directories")
    parser.add_argument("--data", required=True, help="eval shard set (local dir or URL) written by `rmdepth shard --eval`")
    parser.add_argument("--results", required=True, help="results table dir/URL (parts/*.parquet + summary.md/png)")
    parser.add_argument("--baseline", choices=("none", "constant"), default="constant", help="also store the constant-depth baseline (default constant)")
    parser.add_argument("--limit", type=int, default=0, help="evaluate at most this many new checkpoints in this run (0 = all)")
    add_protocol_arguments(parser)
    add_worker_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.limit < 0 or args.num_workers < 0:
        raise UsageError("--limit and --num-workers must be >= 0")
    from engine.checkpoint import read_identity
    from engine.results import (
        discover_checkpoints,
        eval_set_id,
        make_row,
        part_url,
        read_results,
        result_key,
        write_part,
        write_summary,
    )
    from jobs.eval_runner import evaluate_checkpoint, protocol_for_shard_set
    from pipeline import storage
    from pipeline.loader.shardset import read_summary

    summary = read_summary(args.data)
    protocol = protocol_for_shard_set(protocol_from_args(args), summary)
    settings = protocol.settings()
    evalset = eval_set_id(args.data, summary)
    ckpts, skipped = discover_checkpoints(args.runs)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    todo = []
    for c in ckpts:
        key = result_key(c.url, settings, evalset)
        url = part_url(args.results, c, protocol.name, evalset, key)
        if not storage.exists(url):
            todo.append((c, key, url))
    print(f"{len(ckpts)} checkpoints under {args.runs}, {len(todo)} without a {protocol.name} result on {args.data}")
    if args.limit:
        todo = todo[: args.limit]
    failed = []
    for c, key, url in todo:
        try:
            res = evaluate_checkpoint(
                checkpoint=c.url, data=args.data, protocol=protocol, num_workers=args.num_workers,
                batch_size=args.batch_size, device=args.device, cpus_per_worker=args.cpus_per_worker,
                baseline=args.baseline == "constant", grid_samples=0, ray_address=args.ray_address,
            )
            identity = {**read_identity(c.url), **res.identity}
        except (FileNotFoundError, ValueError) as e:  # e.g. deleted by keep_top_k meanwhile, or unreadable
            failed.append(c.url)
            print(f"failed {c.url}: {e}", file=sys.stderr)
            continue
        row = make_row(ckpt=c, identity=identity, protocol_settings=settings, data_url=args.data, evalset=evalset,
                       key=key, metrics=res.metrics, num_images=len(res.rows), baseline=res.baseline,
                       num_skipped=len(res.skipped))
        write_part(url, row)
        damaged = f" ({len(res.skipped)} damaged frames skipped)" if res.skipped else ""
        print(f"{c.run}/{c.name} step {row['step']}: abs_rel {row['abs_rel']:.4f} a1 {row['a1']:.4f}{damaged}", flush=True)
    rows = read_results(args.results)
    if rows:
        write_summary(args.results, rows)
    print(f"results table {args.results}: {len(rows)} rows")
    if failed:
        print(f"{len(failed)} checkpoint(s) could not be evaluated (they are retried on the next run)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
