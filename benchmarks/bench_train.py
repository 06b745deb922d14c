"""Training throughput: Ray Train (1 worker) vs a bare PyTorch loop with the same model and data; 2 workers vs 1.

All runs use the tiny_cpu RM-Depth nets (or --small), the reference loader on the same synthetic KITTI shard set
and the same per-worker batch, one torch thread per worker. Steps/s are measured inside the loop after `--warmup`
steps (the trainer logs samples/s every `log_every_steps`; the bare loop is timed the same way), so Ray's start-up
cost is reported separately as end-to-end wall time.

  .venv/bin/python benchmarks/bench_train.py --steps 30 --warmup 5 --repeats 3 [--small]
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


def bare_loop(cfg, *, steps: int, warmup: int) -> float:
    """Samples/s of a plain loop: same nets, loader, loss and optimizer as the trainer, nothing else."""
    import torch

    from engine.data import build_loaders
    from engine.optim import build_optimizer
    from model.nets import build_nets
    from model.train_step import train_step

    torch.set_num_threads(1)
    torch.manual_seed(0)
    nets = build_nets(cfg.depth, cfg.motion)
    opt = build_optimizer(nets, cfg.optim)
    train_loader = build_loaders(cfg, 0, 1).train
    it = iter(train_loader.epoch_iterator(0, 0))
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        batch = next(it)
        train_step(nets, opt, batch, cfg.loss, step=i, total_steps=warmup + steps)
    assert t0 is not None
    return steps * cfg.loader.batch_size / (time.perf_counter() - t0)


def ray_run(cfg, *, workers: int, steps: int, warmup: int, storage: str, name: str) -> tuple[float, float]:
    """(samples/s over the steps after warm-up, as logged by rank 0; end-to-end wall seconds of train())."""
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
    seconds = sum(cfg.loader.batch_size * workers / r["samples_per_s"] for r in rows)
    return len(rows) * cfg.loader.batch_size * workers / seconds, wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--small", action="store_true", help="use the small test nets at 104x32 (much faster)")
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
    sets = make_shard_sets(tmp, train_frames=30)
    over = [f"data.train_url={sets['train']}", "data.val_url=", "loader.num_workers=1"]
    if args.small:
        over = [*SMALL, *over, "loader.num_workers=1"]
    cfg = apply_overrides(tiny_cpu(), over)
    ray.init(num_cpus=args.cpus, include_dashboard=False, _temp_dir=tempfile.mkdtemp(prefix="rmdbench-", dir="/tmp"),
             log_to_driver=False, configure_logging=False)
    storage = os.path.join(tmp, "runs")
    bare, r1, r2, w1, w2 = [], [], [], [], []
    for rep in range(args.repeats):  # interleaved, so that load changes hit every variant alike
        bare.append(bare_loop(cfg, steps=args.steps, warmup=args.warmup))
        sps, wall = ray_run(cfg, workers=1, steps=args.steps, warmup=args.warmup, storage=storage, name=f"bench1-{rep}")
        r1.append(sps)
        w1.append(wall)
        sps, wall = ray_run(cfg, workers=2, steps=args.steps, warmup=args.warmup, storage=storage, name=f"bench2-{rep}")
        r2.append(sps)
        w2.append(wall)
        print(f"repeat {rep}: bare {bare[-1]:.2f}, ray1 {r1[-1]:.2f}, ray2 {r2[-1]:.2f} samples/s", flush=True)
    ray.shutdown()
    med = statistics.median
    net = "small test nets 104x32" if args.small else f"tiny_cpu nets {cfg.loader.width}x{cfg.loader.height}"
    print(f"Machine: {machine()}")
    print(f"Data: synthetic KITTI, {net}, batch {cfg.loader.batch_size}/worker, reference loader, "
          f"{args.steps} timed steps after {args.warmup}, median of {args.repeats} interleaved repeats")
    print("| run | samples/s | ratio | end-to-end s |")
    print("|---|---|---|---|")
    print(f"| bare PyTorch loop, 1 process | {med(bare):.2f} | 1.00 | - |")
    print(f"| Ray Train, 1 worker | {med(r1):.2f} | {med(r1) / med(bare):.2f} x bare | {med(w1):.1f} |")
    print(f"| Ray Train, 2 workers (gloo DDP) | {med(r2):.2f} | {med(r2) / med(r1):.2f} x 1 worker | {med(w2):.1f} |")
    subprocess.run(["rm", "-rf", tmp], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
