"""Training throughput: Ray Train (1 worker) vs a bare PyTorch loop with the same model and data; 2 workers vs 1.

All runs use the tiny_cpu RM-Depth nets (or --small), the reference loader on the same synthetic KITTI shard set
(rendered at each input size) and the same per-worker batch, one torch thread per worker, at each `--sizes` input
size. Steps/s, triplets/s and the fraction of the time spent waiting for the next batch are measured inside the loop
after `--warmup` steps (the trainer logs them every `log_every_steps`; the bare loop is timed the same way), so Ray's
start-up cost is reported separately as end-to-end wall time.

  .venv/bin/python benchmarks/bench_train.py --steps 30 --warmup 5 --repeats 3 [--sizes 208x64,640x192] [--small]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.node() or 'vm'}: {os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, load avg {load:.1f}"


class Rate(NamedTuple):
    """Throughput over the timed steps: steps/s, triplets/s (all workers) and the share of the time spent waiting
    for the next batch (rank 0's)."""

    steps_per_s: float
    triplets_per_s: float
    data_wait: float


def bare_loop(cfg, *, steps: int, warmup: int) -> Rate:
    """A plain loop: same nets, loader, loss and optimizer as the trainer, nothing else."""
    import torch

    from engine.data import build_loaders
    from engine.optim import build_optimizer
    from model.nets import build_nets
    from model.train_step import train_step

    torch.set_num_threads(1)
    torch.manual_seed(0)
    nets = build_nets(cfg.depth, cfg.motion)
    if cfg.train.channels_last:
        nets.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # runtime API, not in stubs
    opt = build_optimizer(nets, cfg.optim)
    train_loader = build_loaders(cfg, 0, 1).train
    it = iter(train_loader.epoch_iterator(0, 0))
    t0, wait = None, 0.0
    for i in range(warmup + steps):
        if i == warmup:
            t0, wait = time.perf_counter(), 0.0
        t_data = time.perf_counter()
        batch = next(it)
        wait += time.perf_counter() - t_data
        train_step(nets, opt, batch, cfg.loss, step=i, total_steps=warmup + steps)
    assert t0 is not None
    seconds = time.perf_counter() - t0
    return Rate(steps / seconds, steps * cfg.loader.batch_size / seconds, wait / seconds)


def ray_run(cfg, *, workers: int, steps: int, warmup: int, storage: str, name: str) -> tuple[Rate, float]:
    """(throughput over the steps after warm-up, as logged by rank 0; end-to-end wall seconds of train())."""
    from dataclasses import replace

    from jobs.train import train

    cfg = replace(
        cfg,
        train=replace(cfg.train, epochs=1, max_steps_per_epoch=warmup + steps, log_every_steps=1, image_every_steps=0,
                      validate=False, num_threads=1),
        checkpoint=replace(cfg.checkpoint, every_steps=0),
        scaling=replace(cfg.scaling, num_workers=workers, min_workers=0, max_workers=0, cpus_per_worker=1.0),
    )
    t0 = time.perf_counter()
    res = train(cfg, storage_path=storage, run_name=name)
    wall = time.perf_counter() - t0
    rows = [r for r in res.history if r["step"] > warmup]
    durations = [cfg.loader.batch_size * workers / r["samples_per_s"] for r in rows]
    seconds = sum(durations)
    wait = sum(d * r["data_wait_fraction"] for d, r in zip(durations, rows, strict=True))
    return Rate(len(rows) / seconds, len(rows) * cfg.loader.batch_size * workers / seconds, wait / seconds), wall


def measure(cfg, args, storage: str, size: str) -> list[tuple[str, Rate, float]]:
    """Interleaved repeats of the three runs at one input size -> (name, median rates, median wall) rows."""
    runs: dict[str, list[tuple[Rate, float]]] = {"bare": [], "ray1": [], "ray2": []}
    for rep in range(args.repeats):  # interleaved, so that load changes hit every variant alike
        runs["bare"].append((bare_loop(cfg, steps=args.steps, warmup=args.warmup), math.nan))
        for workers in (1, 2):
            runs[f"ray{workers}"].append(ray_run(cfg, workers=workers, steps=args.steps, warmup=args.warmup,
                                                 storage=storage, name=f"bench{workers}-{size}-{rep}"))
        print(f"{size} repeat {rep}: " + ", ".join(f"{k} {v[-1][0].triplets_per_s:.2f}" for k, v in runs.items())
              + " triplets/s", flush=True)
    med = statistics.median
    return [(k, Rate(*(med(getattr(r, f) for r, _ in v) for f in Rate._fields)), med(w for _, w in v))
            for k, v in runs.items()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--sizes", default="208x64,640x192", help="input sizes WxH (default tiny_cpu's and the paper's)")
    p.add_argument("--small", action="store_true", help="use the small test nets at 104x32 only (much faster)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each variant (median reported)")
    args = p.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TQDM_DISABLE", "1")
    import ray

    from configs.presets import tiny_cpu
    from engine.config_io import apply_overrides
    from tests.train.conftest import SMALL, make_shard_sets

    tmp = tempfile.mkdtemp(prefix="bench-train-")
    ray.init(num_cpus=args.cpus, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="rmdbench-", dir="/tmp"),
             log_to_driver=False, configure_logging=False)
    storage = os.path.join(tmp, "runs")
    sizes = ["104x32"] if args.small else [s.strip() for s in args.sizes.split(",") if s.strip()]
    results = {}
    for size in sizes:
        w, h = size.split("x")
        sets = make_shard_sets(os.path.join(tmp, size), train_frames=30, size=size)
        over = [f"data.train_url={sets['train']}", "data.val_url=", "loader.num_workers=1"]
        if args.small:
            over = [*SMALL, *over, "loader.num_workers=1"]
        cfg = apply_overrides(tiny_cpu(), [*over, f"loader.width={w}", f"loader.height={h}"])
        results[size] = (cfg.loader.batch_size, measure(cfg, args, storage, size))
    ray.shutdown()
    print(f"Machine: {machine()}")
    nets = "small test nets" if args.small else "tiny_cpu nets"
    print(f"Data: synthetic KITTI rendered at the input size, {nets}, reference loader (1 loader process per worker), "
          f"1 torch thread per worker, {args.steps} timed steps after {args.warmup}, median of {args.repeats} "
          "interleaved repeats")
    names = {"bare": "bare PyTorch loop, 1 process", "ray1": "Ray Train, 1 worker", "ray2": "Ray Train, 2 workers (gloo DDP)"}
    print("| input | run | batch | steps/s | triplets/s | ratio | data-wait | end-to-end s |")
    print("|---|---|---|---|---|---|---|---|")
    for size, (batch, rows) in results.items():
        rate = {k: r for k, r, _ in rows}
        for k, r, wall in rows:
            ratio = {"bare": "1.00", "ray1": f"{r.triplets_per_s / rate['bare'].triplets_per_s:.2f} x bare",
                     "ray2": f"{r.triplets_per_s / rate['ray1'].triplets_per_s:.2f} x 1 worker"}[k]
            batches = batch * (2 if k == "ray2" else 1)
            print(f"| {size} | {names[k]} | {batches} | {r.steps_per_s:.3f} | {r.triplets_per_s:.2f} | {ratio} | "
                  f"{100 * r.data_wait:.1f}% | {'-' if math.isnan(wall) else f'{wall:.1f}'} |")
    subprocess.run(["rm", "-rf", tmp], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
