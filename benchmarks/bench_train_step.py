"""Training-step time of `tiny_cpu`: this checkout against an earlier revision, in the same run.

Each measurement runs in its own process on preloaded batches (no data loading): the tiny_cpu nets and loss, the
optimizer a run builds (`engine.optim.build_optimizer` of that revision), forward + backward + step, median over
40 steps after 5 warm-up steps, for the two phases of a run (object-motion burn-in, and the object-motion field on)
and 1 or 2 torch threads. The baseline revision is checked out with
`git worktree` into a temporary directory and timed by the same script (its own train_step API is detected).

  .venv/bin/python benchmarks/bench_train_step.py --baseline-rev 18a539a --data SHARDS [--size 208x64] \
      [--set train.channels_last=true --set train.precision=bf16 ...]

"now" is tiny_cpu as shipped; with `--set` overrides (the `rmdepth train --set` syntax) a third column times this
checkout with them (train.precision and train.channels_last are applied as a run applies them).
SHARDS is a training shard set (e.g. `rmdepth synth kitti` + `rmdepth shard`); by default a small one is rendered.
The last rows weight the two phases by their share of a tiny_cpu run (the field is off for its first 30% of steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = r'''
import json, statistics, sys, time
repo, data, phase, size, threads = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
overrides = json.loads(sys.argv[6])
sys.path.insert(0, repo)
import torch
torch.set_num_threads(threads)
from dataclasses import replace
from configs.presets import tiny_cpu
from pipeline.loader.build import build_train_loader
import model.train_step as ts
try:
    from model.nets import build_nets
except ImportError:
    from model.train_step import build_nets
cfg = tiny_cpu()
if overrides:
    from engine.config_io import apply_overrides
    cfg = apply_overrides(cfg, overrides)
w, h = map(int, size.split("x"))
it = build_train_loader(data, replace(cfg.loader, num_workers=0, width=w, height=h)).epoch_iterator(0)
batches = [next(it) for _ in range(4)]
torch.manual_seed(0)
nets = build_nets(cfg.depth, cfg.motion)
if getattr(cfg.train, "channels_last", False):
    nets = nets.to(memory_format=torch.channels_last)
try:  # the optimizer a run builds (fused Adam now; the per-parameter loop at the baseline)
    from engine.optim import build_optimizer
    opt = build_optimizer(nets, cfg.optim)
except ImportError:
    opt = torch.optim.Adam(nets.parameters(), lr=2e-4)
start = 0 if phase == "motion" else 10**9
extra = {"motion_burnin_unit": "steps"} if hasattr(cfg.loss, "motion_burnin_unit") else {}
loss_cfg = replace(cfg.loss, motion_burnin_start=start, motion_burnin_end=start, **extra)
new_api = "optimizer" in ts.train_step.__code__.co_varnames[:2]
dtype = None
if hasattr(cfg.train, "precision"):  # resolved as a run resolves it
    from engine.runtime import compute_dtype
    dtype = compute_dtype(cfg.train.precision, torch.device("cpu"))
kw = {"compute_dtype": dtype} if dtype is not None else {}
times = []
for i in range(45):
    b = batches[i % len(batches)]
    t0 = time.perf_counter()
    if new_api:
        ts.train_step(nets, opt, b, loss_cfg, step=i, **kw)
    else:
        out = ts.train_step(nets, b, loss_cfg, step=i)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    times.append(time.perf_counter() - t0)
print(statistics.median(times[5:]))
'''


def step_seconds(repo: str, data: str, phase: str, size: str, threads: int, overrides: list[str]) -> float:
    """Median seconds per step in a fresh process."""
    out = subprocess.run([sys.executable, "-c", WORKER, repo, data, phase, size, str(threads), json.dumps(overrides)],
                         capture_output=True, text=True, check=True, cwd=repo)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline-rev", default="18a539a", help="git revision to compare with (default: before issue 12)")
    p.add_argument("--data", default="", help="training shard set (default: render a small one)")
    p.add_argument("--size", default="208x64", help="network input WxH (default tiny_cpu's 208x64)")
    p.add_argument("--threads", default="1,2", help="torch thread counts to measure")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="also time this checkout with these overrides (repeatable)")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-step-")
    data = args.data
    if not data:
        sys.path.insert(0, REPO)
        from tests.train.conftest import make_shard_sets

        data = make_shard_sets(tmp, train_frames=12)["train"]
    base = os.path.join(tmp, "baseline")
    subprocess.run(["git", "-C", REPO, "worktree", "add", "-q", "--detach", base, args.baseline_rev], check=True)
    try:
        rows = []
        for threads in (int(t) for t in args.threads.split(",")):
            for phase in ("burnin", "motion"):
                old = step_seconds(base, data, phase, args.size, threads, [])
                new = step_seconds(REPO, data, phase, args.size, threads, [])
                alt = step_seconds(REPO, data, phase, args.size, threads, args.set) if args.set else float("nan")
                rows.append((threads, phase, old, new, alt))
                print(f"threads {threads} {phase}: baseline {old:.3f} s, now {new:.3f} s, with --set {alt:.3f} s",
                      flush=True)
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", base], check=False)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"tiny_cpu at {args.size}, batch 4, preloaded batches; baseline = {args.baseline_rev}")
    alt_name = f"now with {' '.join(args.set)}" if args.set else "(no --set)"
    print(f"| torch threads | phase | baseline s/step | now s/step | speed-up | {alt_name} s/step | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for threads, phase, old, new, alt in rows:
        label = "object-motion burn-in" if phase == "burnin" else "object motion on"
        print(f"| {threads} | {label} | {old:.3f} | {new:.3f} | {old / new:.2f}x | {alt:.3f} | {old / alt:.2f}x |")
    share = burnin_share()
    for threads in sorted({r[0] for r in rows}):
        by_phase = {r[1]: r[2:] for r in rows if r[0] == threads}
        old, new, alt = (share * b + (1 - share) * m for b, m in zip(by_phase["burnin"], by_phase["motion"], strict=True))
        print(f"| {threads} | a tiny_cpu run ({share:.0%} burn-in) | {old:.3f} | {new:.3f} | {old / new:.2f}x | "
              f"{alt:.3f} | {old / alt:.2f}x |")
    return 0


def burnin_share() -> float:
    """The share of a tiny_cpu run's steps before the object-motion field switches on (its burn-in start)."""
    sys.path.insert(0, REPO)
    from configs.presets import tiny_cpu

    loss = tiny_cpu().loss
    assert loss.motion_burnin_unit == "fraction", loss.motion_burnin_unit
    return loss.motion_burnin_start


if __name__ == "__main__":
    sys.exit(main())
