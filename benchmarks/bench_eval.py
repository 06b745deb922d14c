"""Distributed evaluation throughput: `rmdepth eval` frames/s with 2 Ray workers vs 1 (same run, same data).

Builds a synthetic KITTI eval shard set and a real checkpoint (tiny_cpu preset, freshly initialised RM-Depth net),
then runs jobs.eval_runner.evaluate_checkpoint with 1 and 2 workers on one local Ray cluster, interleaved, `--repeats`
times each. Reports the median end-to-end wall time (driver view: model load + loader + forward + metrics + merge)
and the per-worker compute time, as frames/s and the 2-vs-1 ratio (goal >= 1.7x on a machine with >= 2 free cores).

  .venv/bin/python benchmarks/bench_eval.py --frames 24 --drives 2 --repeats 3
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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.node() or 'vm'}: {os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, load avg {load:.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=24, help="frames per synthetic drive")
    p.add_argument("--drives", type=int, default=2, help="synthetic drives (eval frames = drives x frames)")
    p.add_argument("--size", default="208x64", help="stored eval frame size (= tiny_cpu network size)")
    p.add_argument("--batch-size", type=int, default=4, help="eval batch size per worker")
    p.add_argument("--repeats", type=int, default=3, help="runs per worker count (interleaved)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = p.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import ray

    from engine.checkpoint import TrainPosition, checkpoint_name
    from engine.evaluate import make_protocol
    from jobs.eval_runner import evaluate_checkpoint
    from tests.eval.helpers import make_checkpoint

    tmp = tempfile.mkdtemp(prefix="bench-eval-")
    raw, shards = os.path.join(tmp, "raw"), os.path.join(tmp, "shards")
    py = [sys.executable, "-m", "jobs"]
    subprocess.run([*py, "synth", "kitti", raw, "--drives", str(args.drives), "--frames", str(args.frames),
                    "--size", "416x128", "--quiet"], check=True)
    subprocess.run([*py, "shard", "--dataset", "kitti", "--input", raw, "--output", shards, "--eval", "--no-ray",
                    "--size", args.size, "--samples-per-shard", "8", "--cameras", "02"], check=True,
                   stdout=subprocess.DEVNULL)
    name = checkpoint_name(TrainPosition(epoch=0, step=1))
    ckpt = make_checkpoint(os.path.join(tmp, "runs", "bench", name), step=1, small=False)
    ray.init(num_cpus=args.cpus, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="rmdbench-", dir="/tmp"),
             log_to_driver=False, configure_logging=False)
    protocol = make_protocol("kitti-eigen")
    kw = dict(checkpoint=ckpt, data=shards, protocol=protocol, batch_size=args.batch_size, grid_samples=0)
    evaluate_checkpoint(num_workers=2, **kw)  # warm-up: worker processes, imports, page cache
    wall: dict[int, list[float]] = {1: [], 2: []}
    n = 0
    for _ in range(args.repeats):
        for w in (1, 2):
            t0 = time.perf_counter()
            res = evaluate_checkpoint(num_workers=w, **kw)
            wall[w].append(time.perf_counter() - t0)
            n = len(res.rows)
    ray.shutdown()
    med = {w: statistics.median(v) for w, v in wall.items()}
    print(f"Command: `.venv/bin/python benchmarks/bench_eval.py {' '.join(sys.argv[1:])}`  ")
    print(f"Machine: {machine()}  ")
    print(f"Data: synthetic KITTI eval shards, {n} frames at {args.size}, tiny_cpu RM-Depth net (freshly initialised), "
          f"kitti-eigen protocol, batch {args.batch_size}/worker, local Ray with {args.cpus} CPUs; median of {args.repeats}.")
    print()
    print("| workers | seconds (end to end) | frames/s | ratio |")
    print("|---|---|---|---|")
    for w in (1, 2):
        print(f"| {w} | {med[w]:.2f} | {n / med[w]:.1f} | {med[1] / med[w]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
