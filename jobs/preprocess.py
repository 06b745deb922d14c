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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=("kitti", "cityscapes"), help="input dataset format")
    p.add_argument("--input", required=True, help="dataset root: local path or s3:// URL")
    p.add_argument("--output", required=True, help="shard set destination: local folder or s3:// prefix")
    p.add_argument("--eval", action="store_true",
                   help="write single-frame evaluation shards with gt.npy instead of training triplets")
    p.add_argument("--split", default="",
                   help="set name used in shard file names <dataset>-<split>-%%06d.tar (default train, or test with --eval)")
    p.add_argument("--source-split", default="",
                   help="Cityscapes: leftImg8bit_sequence/<this> folder to read (default: --split)")
    p.add_argument("--split-file", default="",
                   help="text file `<folder> <frame> [l|r]` per line selecting target frames (e.g. eigen_zhou train_files.txt)")
    p.add_argument("--exclude-scenes", default="", help="file of drive/sequence names to leave out (test scenes)")
    p.add_argument("--cameras", default="02,03", help="KITTI cameras, comma-separated: 02 (left), 03 (right)")
    p.add_argument("--frame-gap", type=int, default=0,
                   help="frames between t-g, t, t+g (default: KITTI 1, Cityscapes 2)")
    p.add_argument("--size", default="640x192", help="stored frame size WxH (default 640x192)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of stored frames (default 90)")
    p.add_argument("--samples-per-shard", type=int, default=1000, help="samples per tar shard (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the write-time shuffle across shards (default 0)")
    p.add_argument("--min-speed", type=float, default=0.0,
                   help="KITTI: drop targets with oxts forward speed below this many m/s (static frames); 0 = keep all")
    p.add_argument("--crop-bottom", type=float, default=-1.0,
                   help="fraction of image height cropped from the bottom (default: Cityscapes 0.25, KITTI 0)")
    p.add_argument("--gt-source", default="", choices=("", "velodyne", "groundtruth", "disparity"),
                   help="eval GT: KITTI velodyne (default) or groundtruth (proj_depth pngs); Cityscapes disparity")
    p.add_argument("--camera-depth", action="store_true",
                   help="KITTI velodyne GT: use camera z as depth instead of monodepth2's velodyne x (vel_depth)")
    p.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster started when none is running")
    p.add_argument("--no-ray", action="store_true", help="run the shard tasks in this process (debugging, tests)")
    p.add_argument("--strict", action="store_true", help="any skipped input is fatal (exit 1)")
    p.add_argument("--overwrite", action="store_true", help="replace a different shard set already at --output")


def config_from_args(args: argparse.Namespace):
    from jobs.errors import UsageError
    from pipeline.shards.config import ShardConfig

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WxH, e.g. 640x192, got {args.size!r}") from None
    cameras = tuple(c.strip() for c in args.cameras.split(",") if c.strip())
    if args.dataset == "cityscapes" and args.cameras == "02,03":
        cameras = ("left",)
    try:
        return ShardConfig(
            dataset=args.dataset, input=args.input, kind="eval" if args.eval else "train", split=args.split,
            source_split=args.source_split, cameras=cameras, frame_gap=args.frame_gap, width=w, height=h,
            jpeg_quality=args.jpeg_quality, samples_per_shard=args.samples_per_shard, seed=args.seed,
            split_file=args.split_file, exclude_scenes_file=args.exclude_scenes, min_speed=args.min_speed,
            crop_bottom_frac=args.crop_bottom, gt_source=args.gt_source, vel_depth=not args.camera_depth,
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def _ray_runner(progress, *, workers: int):
    """Runs the shard tasks as Ray tasks; Ray is attached/started only here, after the inputs were listed (so a
    bad SRC or an already complete set never waits for a cluster), and a cluster started here stops with the job."""

    def run(tasks):
        import ray

        from jobs.ray_cluster import ray_session
        from pipeline.shards.task import write_shard

        with ray_session(num_cpus=max(1, workers), log_to_driver=bool(os.environ.get("RAY_ADDRESS"))):
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
