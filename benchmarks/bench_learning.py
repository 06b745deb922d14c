"""Learning benchmark: does the model learn depth, ego-motion and moving objects, on every seed?

Renders KITTI-format train / validation / test worlds with seeds that were never used while developing (the
defaults below; pass others with --world-seed), shards them with the real shard writer, trains each variant for each
training seed with the real loop (engine.trainer.fit, LocalRuntime, reference loader, one torch thread per run,
--parallel runs at a time), and evaluates the best (by validation AbsRel) and the last checkpoint of every run on the
test world:
  * velodyne AbsRel and a1 under the KITTI Eigen protocol (Garg crop, median scaling, 80 m cap);
  * dense AbsRel on static and on independently moving pixels (the synthetic truth knows them; pixel-weighted);
  * field recall: the share of the moving cars' true motion the object-motion field recovers (engine.synth_eval);
  * pose: monodepth2's 5-frame ATE against the true camera motion, next to a standing camera's ATE.
A constant-depth row (median-scaled) is the floor every model must beat.

  .venv/bin/python benchmarks/bench_learning.py --seeds 0,1,2 --parallel 2 --write BENCHMARKS.md

Variants (all tiny_cpu, 208x64, batch 4; `--variants` selects):
  rmdepth         RM-Depth depth net + motion net with the object-motion field and the outlier-aware regulariser
  rmdepth-li      the same with Li et al.'s sparsity + smoothness regulariser instead
  rmdepth-rigid   no object motion (camera motion only)
  resnet18        Monodepth2's ResNet18 depth net (14.3M, from scratch) in place of RM-Depth's, same everything else
  rmdepth-full    the default (full-size, 2.97M) RM-Depth depth net with RMU steps 9/2/2, compute-balanced layout
  rmdepth-full-v1 the first full-size layout (21.7 GMACs at 640x192 against 5.2), for the issue "Fast RM-Depth"
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS: dict[str, tuple[str, ...]] = {
    "rmdepth": (),
    "rmdepth-li": ("loss.motion_regularizer=li_sparsity",),
    "rmdepth-rigid": ("motion.use_object_motion=false",),
    "resnet18": ("depth.arch=resnet18",),
    # the full-size depth nets (2.97M parameters, RMU steps 9/2/2) instead of tiny_cpu's half-width one
    "rmdepth-full": ("depth.encoder_channels=8,16,32,48,224,320", "depth.init_channels=176", "depth.rmu_steps=9,2,2"),
    "rmdepth-full-v1": ("depth.encoder_channels=32,32,64,96,128,192", "depth.init_channels=120",
                        "depth.rmu_steps=9,2,2"),
}
MARK_START = "<!-- bench_learning: start -->"
MARK_END = "<!-- bench_learning: end -->"


def render_worlds(out: str, *, world_seed: int, moving: int, train_drives: int, frames: int) -> dict[str, str]:
    """Synthetic KITTI trees (train / val / test, disjoint seeds and drive numbers) and their shard sets."""
    from pipeline.shards.build import build_shard_set, run_serial
    from pipeline.shards.config import ShardConfig
    from pipeline.synth import KittiSynthConfig, WorldConfig, write_kitti

    worlds = {
        "train": KittiSynthConfig(num_drives=train_drives, num_frames=frames, seed=world_seed, first_drive=1,
                                  stereo=False, world=WorldConfig(num_moving=moving)),
        "val": KittiSynthConfig(num_drives=2, num_frames=20, seed=world_seed + 1, first_drive=50, stereo=False,
                                world=WorldConfig(num_moving=moving)),
        "test": KittiSynthConfig(num_drives=2, num_frames=30, seed=world_seed + 2, first_drive=80, stereo=False,
                                 world=WorldConfig(num_moving=moving)),
    }
    paths = {}
    for name, cfg in worlds.items():
        root = os.path.join(out, "worlds", name)
        if not os.path.exists(os.path.join(root, "2011_09_26")):
            write_kitti(root, cfg, progress=False, workers=2)
        paths[f"{name}_world"] = root
        kinds = {"train": ("train",), "val": ("train", "eval"), "test": ("eval",)}[name]
        for kind in kinds:
            dst = os.path.join(out, "shards", f"{name}-{kind}")
            shard = ShardConfig(dataset="kitti", input=root, kind=kind, cameras=("02",), width=416, height=128,
                                samples_per_shard=64)
            build_shard_set(shard, dst, run_tasks=run_serial, log=lambda _: None)
            paths[f"{name}_{kind}"] = dst
    return paths


def train_and_evaluate(spec: dict) -> dict:
    """One variant x seed: fit, then evaluate the best and the last checkpoint (runs in its own process)."""
    import torch

    torch.set_num_threads(1)
    from configs.presets import tiny_cpu
    from engine.config_io import apply_overrides
    from engine.data import build_loaders
    from engine.runtime import LocalRuntime
    from engine.trainer import fit

    paths, run_dir, seed = spec["paths"], spec["run_dir"], spec["seed"]
    cfg = apply_overrides(tiny_cpu(), [
        f"data.train_url={paths['train_train']}", f"data.val_url={paths['val_eval']}",
        f"data.pose_val_url={paths['val_train']}", f"train.seed={seed}", f"loader.seed={seed}",
        "loader.num_workers=0", *spec["overrides"],
    ])
    rt = LocalRuntime(run_dir, keep_top_k=1)
    t0 = time.perf_counter()
    res = fit(cfg, rt, loaders=build_loaders, run_name=os.path.basename(run_dir), tensorboard_dir=f"{run_dir}/tb")
    minutes = (time.perf_counter() - t0) / 60
    entries = rt.store.entries()
    best = min(entries, key=lambda e: e[1].get("val_abs_rel", float("inf")))
    out = {"variant": spec["variant"], "seed": seed, "steps": res.position.step, "minutes": minutes,
           "val_history": [{k: v for k, v in r.items() if k in ("step", "val_abs_rel", "val_pose_ate")}
                           for r in res.val_history]}
    for tag, (url, metrics) in (("best", best), ("last", entries[-1])):
        out[tag] = evaluate_checkpoint(url, paths)
        out[tag]["step"] = metrics["step"]
    return out


def evaluate_checkpoint(url: str, paths: dict[str, str]) -> dict:
    from engine.checkpoint import load_nets

    nets, cfg, _ = load_nets(url)
    return evaluate_nets(nets, cfg, paths)


def evaluate_initialisation(paths: dict[str, str]) -> dict:
    """The untrained nets of tiny_cpu (seed 0): the constant-depth baseline on the same frames, and what the pose
    net's forward-motion prior alone scores (a constant forward motion fits a straight drive's ATE well; the
    rotation error and the length ratio's spread show what training adds)."""
    import torch

    from configs.presets import tiny_cpu
    from model.nets import build_nets

    cfg = tiny_cpu()
    torch.manual_seed(0)
    return evaluate_nets(build_nets(cfg.depth, cfg.motion), cfg, paths, baseline=True)


def evaluate_nets(nets, cfg, paths: dict[str, str], *, baseline: bool = False) -> dict:
    from dataclasses import replace

    from engine.evaluate import accumulate, evaluate_batches, make_protocol
    from engine.synth_eval import evaluate_synthetic
    from pipeline.loader.build import build_eval_loader

    nets.eval()
    loader_cfg = replace(cfg.loader, batch_size=8, loader="reference", num_workers=0)
    rows, base_rows, _, _ = evaluate_batches(nets.depth, build_eval_loader(paths["test_eval"], loader_cfg),
                                             make_protocol("kitti-eigen"), baseline=baseline)
    m = accumulate(rows).means()
    out = {"abs_rel": m["abs_rel"], "a1": m["a1"]}
    if baseline:
        b = accumulate(base_rows).means()
        out.update(baseline_abs_rel=b["abs_rel"], baseline_a1=b["a1"])
    out.update(evaluate_synthetic(nets, paths["test_world"], size_wh=(cfg.loader.width, cfg.loader.height)))
    return out


def _fmt(values: list[float], digits: int = 3) -> str:
    vals = [v for v in values if v == v]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _field(rs: list[dict]) -> str:
    """Field recall (and static leak) at the best checkpoints; '-' for rigid runs (engine.synth_eval)."""
    recall = _fmt([r["best"].get("field_recall", math.nan) for r in rs])
    return recall if recall == "-" else f"{recall} ({_fmt([r['best'].get('field_static', math.nan) for r in rs], 4)})"


def table(results: list[dict], baseline: dict, args) -> str:
    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_learning.py {' '.join(sys.argv[1:])}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.parallel} runs at a time, 1 torch thread each.  ",
        f"Worlds (never used while developing): train {args.train_drives} drives x {args.frames} frames (seed "
        f"{args.world_seed}), validation 2 x 20 (seed {args.world_seed + 1}), test 2 x 30 (seed {args.world_seed + 2}), "
        f"{args.moving} independently moving cars per drive, rendered 416x128, trained at 208x64.",
        "",
        "Per run (test world; best = lowest validation AbsRel; pose ATE: 5-frame snippets, metres):",
        "",
        "| variant | seed | steps | minutes | best step | AbsRel best | AbsRel last | a1 best | dense static | "
        "dense moving | dense moving last | field recall | pose ATE best | pose cosine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b, last = r["best"], r["last"]
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['steps']} | {r['minutes']:.1f} | {b['step']} | {b['abs_rel']:.3f} | "
            f"{last['abs_rel']:.3f} | {b['a1']:.3f} | {b['dense_abs_rel_static']:.3f} | {b['dense_abs_rel_moving']:.3f} | "
            f"{last['dense_abs_rel_moving']:.3f} | {_fmt([b.get('field_recall', math.nan)])} | {b['pose_ate']:.4f} | "
            f"{b['pose_cosine']:.4f} |"
        )
    lines += [
        "",
        "Mean ± std over seeds:",
        "",
        "| variant | seeds | AbsRel best | AbsRel last | last / best | a1 best | dense static | dense moving | "
        "field recall (static leak, m) | pose ATE (rotation error) | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| constant depth (median-scaled) | - | {baseline['baseline_abs_rel']:.3f} | - | - | "
        f"{baseline['baseline_a1']:.3f} | - | - | - | {baseline['pose_ate_zero_motion']:.4f} (standing camera) | - |",
        f"| untrained nets (forward-motion prior only) | - | {baseline['abs_rel']:.3f} | - | - | {baseline['a1']:.3f} | "
        f"{baseline['dense_abs_rel_static']:.3f} | {baseline['dense_abs_rel_moving']:.3f} | - | "
        f"{baseline['pose_ate']:.4f} (rotation error {baseline['pose_rotation_error_deg']:.3f} deg) | - |",
    ]
    for variant in dict.fromkeys(r["variant"] for r in results):
        rs = [r for r in results if r["variant"] == variant]
        lines.append(
            f"| {variant} | {len(rs)} | {_fmt([r['best']['abs_rel'] for r in rs])} | "
            f"{_fmt([r['last']['abs_rel'] for r in rs])} | "
            f"{_fmt([r['last']['abs_rel'] / r['best']['abs_rel'] for r in rs], 2)} | "
            f"{_fmt([r['best']['a1'] for r in rs])} | {_fmt([r['best']['dense_abs_rel_static'] for r in rs])} | "
            f"{_fmt([r['best']['dense_abs_rel_moving'] for r in rs])} | {_field(rs)} | "
            f"{_fmt([r['best']['pose_ate'] for r in rs], 4)} "
            f"({_fmt([r['best']['pose_rotation_error_deg'] for r in rs])} deg) | "
            f"{_fmt([r['minutes'] for r in rs], 1)} |"
        )
    return "\n".join(lines)


def write_section(path: str, text: str) -> None:
    """Replace the text between the bench_learning markers of BENCHMARKS.md (append the section if absent)."""
    doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    block = f"{MARK_START}\n{text}\n{MARK_END}"
    if MARK_START in doc and MARK_END in doc:
        doc = doc[: doc.index(MARK_START)] + block + doc[doc.index(MARK_END) + len(MARK_END):]
    else:
        doc = doc.rstrip("\n") + "\n\n## Learning\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2", help="training seeds (default 0,1,2)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--world-seed", type=int, default=9001, help="seed of the train world; val and test use +1, +2")
    p.add_argument("--moving", type=int, default=8, help="independently moving cars per drive (default 8)")
    p.add_argument("--train-drives", type=int, default=8)
    p.add_argument("--frames", type=int, default=50, help="frames per training drive (8 x 50: 384 triplets, 96 batches"
                                                        " an epoch, 1344 steps in tiny_cpu's 14 epochs)")
    p.add_argument("--set", action="append", default=[], help="extra config override for every run (repeatable)")
    p.add_argument("--parallel", type=int, default=2, help="runs at a time (each uses one core)")
    p.add_argument("--out", default="work/bench_learning", help="worlds, shards, runs and results.json")
    p.add_argument("--write", default="", help="also write the tables into this BENCHMARKS.md")
    args = p.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    out = os.path.abspath(args.out)
    paths = render_worlds(out, world_seed=args.world_seed, moving=args.moving, train_drives=args.train_drives,
                          frames=args.frames)
    specs = [{"paths": paths, "variant": v, "seed": int(s), "overrides": (*VARIANTS[v], *args.set),
              "run_dir": os.path.join(out, "runs", f"{v}-seed{s}")}
             for s in args.seeds.split(",") for v in variants]
    for spec in specs:
        if os.path.exists(spec["run_dir"]):
            raise SystemExit(f"{spec['run_dir']} exists: remove it or choose another --out")
    results = []
    with ProcessPoolExecutor(max_workers=args.parallel, mp_context=get_context("spawn")) as pool:
        for r in pool.map(train_and_evaluate, specs):
            print(f"{r['variant']} seed {r['seed']}: best AbsRel {r['best']['abs_rel']:.3f} (step {r['best']['step']}), "
                  f"last {r['last']['abs_rel']:.3f}, moving {r['best']['dense_abs_rel_moving']:.3f}, "
                  f"pose ATE {r['best']['pose_ate']:.4f}, {r['minutes']:.1f} min", flush=True)
            results.append(r)
    baseline = evaluate_initialisation(paths)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results, "baseline": baseline}, f, indent=1, default=float)
    text = table(results, baseline, args)
    print(text)
    if args.write:
        write_section(args.write, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
