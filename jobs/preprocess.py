"""Preprocess KITTI raw / Cityscapes sequences into WebDataset triplet shards (or eval shards with gt.npy).

Runs on Ray: one task per output shard (plain @ray.remote tasks), each writing its shard locally and uploading it
to DST. Attaches to a running Ray (already initialised, or RAY_ADDRESS set, e.g. under `ray job submit`), otherwise
starts a local one with --workers CPUs and shuts it down afterwards. S3 endpoint and credentials come from the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), which local workers inherit; on a cluster set them in the
job's runtime_env. Rerunning the same command after a crash completes the set without redoing finished shards.

  rmdepth shard --dataset kitti --input /data/kitti_raw --output s3://bucket/shards/kitti-train
  ray job submit --working-dir . -- python -m jobs.preprocess --dataset kitti --input s3://... --output s3://...
"""

from __future__ import annotations

import argparse
import os
import sys

from jobs.cli import run_module
from jobs.config_args import add_config_arguments, alias, resolve_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, config_help="a ShardConfig JSON, or the summary.json of a shard set (its recipe), "
                                        "instead of --dataset/--input; fields see pipeline/shards/config.py",
                         example="jpeg_quality=95")
    p.add_argument("--output", required=True, help="shard set destination: local folder or s3:// prefix")
    c = p.add_argument_group("shard config (each flag is an alias of a --set override; defaults in ShardConfig)")
    alias(c, "--dataset", field="dataset", help="input dataset format: kitti or cityscapes")
    alias(c, "--input", field="input", help="dataset root: local path or s3:// URL")
    alias(c, "--eval", field="kind", value="eval",
          help="write single-frame evaluation shards with gt.npy instead of training triplets")
    alias(c, "--split", field="split",
          help="set name used in shard file names <dataset>-<split>-%%06d.tar (default train, or test with --eval)")
    alias(c, "--source-split", field="source_split",
          help="Cityscapes: leftImg8bit_sequence/<this> folder to read (default: --split)")
    alias(c, "--split-file", field="split_file",
          help="text file `<folder> <frame> [l|r]` per line selecting target frames (e.g. eigen_zhou train_files.txt)")
    alias(c, "--exclude-scenes", field="exclude_scenes_file", help="file of drive/sequence names to leave out")
    alias(c, "--cameras", field="cameras", help="KITTI cameras, comma-separated: 02 (left), 03 (right)")
    alias(c, "--frame-gap", field="frame_gap", help="frames between t-g, t, t+g (default: KITTI 1, Cityscapes 2)")
    alias(c, "--size", field="width", to_overrides=_size_overrides, stands_for="width=W --set height=H", metavar="WxH",
          help="stored frame size WxH (default 640x192)")
    alias(c, "--jpeg-quality", field="jpeg_quality", help="JPEG quality of stored frames (default 90)")
    alias(c, "--samples-per-shard", field="samples_per_shard", help="samples per tar shard (default 1000)")
    alias(c, "--seed", field="seed", help="seed of the write-time shuffle across shards (default 0)")
    alias(c, "--min-speed", field="min_speed",
          help="KITTI: drop targets with oxts forward speed below this many m/s (static frames); 0 = keep all")
    alias(c, "--crop-bottom", field="crop_bottom_frac",
          help="fraction of image height cropped from the bottom (default: Cityscapes 0.25, KITTI 0)")
    alias(c, "--gt-source", field="gt_source",
          help="eval GT: KITTI velodyne (default) or groundtruth (proj_depth pngs); Cityscapes disparity")
    alias(c, "--camera-depth", field="vel_depth", value="false",
          help="KITTI velodyne GT: use camera z as depth instead of monodepth2's velodyne x (vel_depth)")
    r = p.add_argument_group("run")
    r.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster started when none is running")
    r.add_argument("--no-ray", action="store_true", help="run the shard tasks in this process (debugging, tests)")
    r.add_argument("--strict", action="store_true", help="any skipped input is fatal (exit 1)")
    r.add_argument("--overwrite", action="store_true", help="replace a different shard set already at --output")


def _size_overrides(text: str) -> list[str]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WxH, e.g. 640x192, got {text!r}") from None
    return [f"width={w}", f"height={h}"]


def config_from_args(args: argparse.Namespace):
    """The ShardConfig of this command line: --config (a ShardConfig or a summary.json) or the overrides alone."""
    from pipeline.shards.config import ShardConfig

    return resolve_config(ShardConfig, args, embedded_key="config")


def _ray_runner(progress, *, workers: int):
    """Runs the shard tasks as Ray tasks; Ray is attached/started only here, after the inputs were listed (so a
    bad SRC or an already complete set never waits for a cluster), and a cluster started here stops with the job."""

    def run(tasks):
        import ray

        from jobs.ray_cluster import ray_session, task_errors_in_one_line
        from pipeline.shards.task import write_shard

        with ray_session(num_cpus=max(1, workers), log_to_driver=bool(os.environ.get("RAY_ADDRESS"))), \
                task_errors_in_one_line("a shard task failed"):
            remote = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(write_shard)
            pending = [remote.remote(t) for t in tasks]

            def outcomes():
                nonlocal pending
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    yield ray.get(ready[0])

            yield from _with_progress(progress, len(tasks), outcomes())

    return run


def _serial_runner(progress):
    from pipeline.shards.build import run_serial

    return lambda tasks: _with_progress(progress, len(tasks), run_serial(tasks))


def _with_progress(progress, total: int, outcomes):
    with progress(total) as bar:
        for out in outcomes:
            bar.update(1)
            yield out


class _LogProgress:
    """Progress on the driver without a TTY (e.g. `ray job logs`): a line at every 10% of the shards."""

    def __init__(self, total: int):
        self.total, self.done, self.next_pct = total, 0, 10

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        self.done += n
        pct = 100 * self.done // max(1, self.total)
        if pct >= self.next_pct or self.done == self.total:
            print(f"shards: {self.done}/{self.total} done", flush=True)
            self.next_pct = (pct // 10 + 1) * 10


def _progress(total):
    if not sys.stderr.isatty():
        return _LogProgress(total)
    from tqdm import tqdm

    return tqdm(total=total, desc="shards", unit="shard")


def preprocess(cfg, output: str, *, workers: int = 2, use_ray: bool = True, strict: bool = False,
               overwrite: bool = False, log=print):
    """Build (or complete) the shard set for `cfg` at `output`; returns its ShardSetSummary."""
    from jobs.errors import JobError
    from pipeline.shards.build import ShardSetError, build_shard_set

    runner = _ray_runner(_progress, workers=workers) if use_ray else _serial_runner(_progress)
    try:
        return build_shard_set(cfg, output, run_tasks=runner, strict=strict, overwrite=overwrite, log=log)
    except ShardSetError as e:
        raise JobError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    from jobs.errors import UsageError

    cfg = config_from_args(args)
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    summary = preprocess(cfg, args.output, workers=args.workers, use_ray=not args.no_ray, strict=args.strict,
                         overwrite=args.overwrite)
    stages = summary.extra.get("errors_by_stage", {})
    print(f"shard set {args.output}: {summary.num_samples} samples in {len(summary.shards)} shards "
          f"({summary.stored_size_wh[0]}x{summary.stored_size_wh[1]}), {summary.num_errors} inputs skipped"
          + (f" {stages}" if stages else "") + (", see errors.parquet" if summary.num_errors else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
