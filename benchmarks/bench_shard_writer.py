"""Shard writer throughput vs the bare cost of its image work, and Ray scaling from 1 to 2 workers.

On one synthetic KITTI world (rendered with `rmdepth synth kitti`, full 1242x375 PNGs), in the same process:
  baseline  decode PNG + resize + JPEG-encode every stored frame (3 per triplet), nothing else
  writer    the real shard task (pipeline.shards.task.write_shard, serial, local DST): the same image work plus
            tar, DALI index, sha256, part record and atomic upload; once with the frame cache off (same work as
            the baseline) and once as shipped (a frame shared by neighbouring triplets is encoded once)
  ray N     the whole job (jobs.preprocess.preprocess) on a local Ray cluster with N CPUs (start-up excluded)
Rates are stored frames per second; the ratios writer/baseline and ray2/ray1 are what to compare across machines.

    .venv/bin/python benchmarks/bench_shard_writer.py [--frames 16 --drives 2] [--write-md BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _baseline(triplets, size_wh, quality) -> float:
    from pipeline.shards.encode import decode_frame, encode_jpeg

    t0 = time.perf_counter()
    for t in triplets:
        for f in t.frames:
            encode_jpeg(decode_frame(f.path, size_wh=t.size_wh, crop_bottom=t.crop_bottom), size_wh=size_wh,
                        quality=quality)
    return time.perf_counter() - t0


def _writer(cfg, dst, *, cache: bool) -> float:
    from pipeline.shards.build import build_shard_set, run_serial
    from pipeline.shards.encode import FrameCache

    FrameCache.default_capacity = 2048 if cache else 0
    shutil.rmtree(dst, ignore_errors=True)
    t0 = time.perf_counter()
    build_shard_set(cfg, dst, run_tasks=run_serial, log=lambda m: None)
    return time.perf_counter() - t0


def _ray(cfg, dst, num_cpus: int) -> float:
    import ray

    from jobs.preprocess import preprocess

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _temp_dir=tempfile.mkdtemp(prefix="rmdray-bench-", dir="/tmp"))
    try:
        ray.get([ray.remote(lambda: 0).remote() for _ in range(num_cpus * 2)])  # warm the worker pool
        shutil.rmtree(dst, ignore_errors=True)
        t0 = time.perf_counter()
        preprocess(cfg, dst, use_ray=True, log=lambda m: None)
        return time.perf_counter() - t0
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drives", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--input", default="", help="existing KITTI-format root (default: render a synthetic one)")
    ap.add_argument("--size", default="640x192")
    ap.add_argument("--samples-per-shard", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each measurement")
    ap.add_argument("--write-md", default="", help="replace the '## Shard writer' section of this markdown file")
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from pipeline.shards.config import ShardConfig
    from pipeline.sources import kitti

    work = tempfile.mkdtemp(prefix="rmd-bench-shards-")
    try:
        root = args.input
        if not root:
            root = os.path.join(work, "raw")
            subprocess.run([sys.executable, "-m", "jobs.synth", "kitti", root, "--drives", str(args.drives),
                            "--frames", str(args.frames), "--size", "1242x375", "--no-truth", "--no-velodyne",
                            "--quiet"], cwd=REPO, check=True)
        w, h = (int(v) for v in args.size.split("x"))
        cfg = ShardConfig(dataset="kitti", input=root, width=w, height=h, samples_per_shard=args.samples_per_shard)
        triplets = kitti.list_triplets(cfg).records
        n_frames = 3 * len(triplets)
        best = lambda f: min(f() for _ in range(args.repeats))  # noqa: E731
        _writer(cfg, os.path.join(work, "warm"), cache=False)  # warm-up: imports, page cache, first-call costs
        base = best(lambda: _baseline(triplets, (w, h), cfg.jpeg_quality))
        nocache = best(lambda: _writer(cfg, os.path.join(work, "w0"), cache=False))
        cached = best(lambda: _writer(cfg, os.path.join(work, "w1"), cache=True))
        ray1 = best(lambda: _ray(dataclasses.replace(cfg), os.path.join(work, "r1"), 1))
        ray2 = best(lambda: _ray(dataclasses.replace(cfg), os.path.join(work, "r2"), 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = lambda t: n_frames / t  # noqa: E731
    machine = f"{platform.node()}: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), " \
              f"Python {platform.python_version()}, shared with other jobs"
    cmd = "python benchmarks/bench_shard_writer.py " + " ".join(sys.argv[1:])
    md = "\n".join([
        "## Shard writer",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {machine}  ",
        f"Data: synthetic KITTI raw, {len(triplets)} triplets = {n_frames} stored frames, 1242x375 PNG -> "
        f"{w}x{h} JPEG q{cfg.jpeg_quality}, {args.samples_per_shard} samples/shard, local disk; best of "
        f"{args.repeats}.",
        "",
        "| run | seconds | stored frames/s | ratio |",
        "|---|---|---|---|",
        f"| baseline: decode + resize + JPEG encode only | {base:.2f} | {rate(base):.1f} | 1.00 |",
        f"| shard writer, frame cache off (same image work) | {nocache:.2f} | {rate(nocache):.1f} | "
        f"{base / nocache:.2f} x baseline |",
        f"| shard writer as shipped (shared frames encoded once) | {cached:.2f} | {rate(cached):.1f} | "
        f"{base / cached:.2f} x baseline |",
        f"| whole job on Ray, 1 CPU | {ray1:.2f} | {rate(ray1):.1f} | 1.00 |",
        f"| whole job on Ray, 2 CPUs | {ray2:.2f} | {rate(ray2):.1f} | {ray1 / ray2:.2f} x Ray 1 CPU |",
        "",
    ])
    print(md)
    if args.write_md:
        text = open(args.write_md).read() if os.path.exists(args.write_md) else "# Benchmarks\n"
        start = text.find("## Shard writer")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            text = text[:start] + md + (text[end + 1:] if end >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + md
        with open(args.write_md, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
