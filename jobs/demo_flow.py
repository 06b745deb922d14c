"""Stages of `rmdepth demo`: synthesize -> shard (Ray) -> train (Ray Train) -> evaluate (Ray) -> pictures -> report.

The demo world: a KITTI-format tree with train drives, one validation drive and one test drive (excluded from the
training shards through a scene list, selected for the eval shards through split files in the standard
`<date>/<drive> <frame> l` format), and a Cityscapes-format tree used for a short pretraining stage (the paper's CS+K
recipe in miniature). All paths are local, or s3:// URLs on a local moto server with --s3.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline import storage

STAGES = ("synthesize", "shard", "train", "evaluate", "pose", "pictures", "report")


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    workdir: str = "work/demo"
    use_s3: bool = False
    quick: bool = False
    workers: int = 2
    seed: int = 0
    loader: str = "dali"
    pretrain: bool = True
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DemoSizes:
    """How big the demo worlds and the training run are."""

    train_drives: int
    frames_per_drive: int
    eval_frames: int
    world_size_wh: tuple[int, int]
    cs_frames: int
    cs_size_wh: tuple[int, int]
    train_size_wh: tuple[int, int]
    epochs: int
    steps_per_epoch: int


FULL = DemoSizes(train_drives=3, frames_per_drive=60, eval_frames=24, world_size_wh=(416, 128), cs_frames=30,
                 cs_size_wh=(416, 208), train_size_wh=(208, 64), epochs=8, steps_per_epoch=100)
QUICK = DemoSizes(train_drives=2, frames_per_drive=14, eval_frames=8, world_size_wh=(208, 64), cs_frames=12,
                  cs_size_wh=(256, 128), train_size_wh=(208, 64), epochs=1, steps_per_epoch=6)


@dataclass(kw_only=True)
class DemoState:
    """What the stages produce, for the report."""

    opts: DemoOptions
    sizes: DemoSizes
    kitti_root: str = ""
    cs_root: str = ""
    shards: dict[str, str] = field(default_factory=dict)
    shard_summaries: dict[str, Any] = field(default_factory=dict)
    train_result: Any = None
    eval_result: Any = None
    eval_url: str = ""
    pose_summary: dict[str, Any] | None = None
    pose_url: str = ""
    synth_metrics: dict[str, float] | None = None
    pictures: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    run_config: Any = None
    storage_root: str = ""


def _stage(state: DemoState, i: int, text: str) -> float:
    print(f"[{i + 1}/{len(STAGES)}] {STAGES[i]}: {text}", flush=True)
    return time.perf_counter()


def run_demo(opts: DemoOptions) -> str:
    """Run every stage; returns the local path of report.md."""
    from jobs.local_s3 import LocalS3
    from jobs.ray_cluster import ray_session

    sizes = QUICK if opts.quick else FULL
    state = DemoState(opts=opts, sizes=sizes)
    workdir = os.path.abspath(opts.workdir)
    os.makedirs(workdir, exist_ok=True)
    s3 = LocalS3().start() if opts.use_s3 else None
    try:
        state.storage_root = s3.create_bucket("rmdepth-demo") if s3 else workdir
        with ray_session(num_cpus=opts.workers):
            return _run_stages(state, workdir)
    finally:
        if s3 is not None:
            s3.stop()


def _run_stages(state: DemoState, workdir: str) -> str:
    from jobs.demo_report import write_report

    _synthesize(state, workdir)
    _shard(state)
    _train(state, workdir)
    _evaluate(state)
    _evaluate_pose(state, workdir)
    _pictures(state, workdir)
    t = _stage(state, 6, "writing report.md and report.html")
    path = write_report(state, workdir)
    state.timings["report"] = time.perf_counter() - t
    return path


# ------------------------------------------------------------------------------------------------------------------
def _synthesize(state: DemoState, workdir: str) -> None:
    from pipeline.synth import CityscapesSynthConfig, KittiSynthConfig, write_cityscapes, write_kitti

    sz, seed = state.sizes, state.opts.seed
    t = _stage(state, 0, "rendering a KITTI-format world and a Cityscapes-format world")
    state.kitti_root = os.path.join(workdir, "kitti_raw")
    state.cs_root = os.path.join(workdir, "cityscapes")
    marker = os.path.join(workdir, f"worlds-{'quick' if state.opts.quick else 'full'}-{seed}.done")
    if not os.path.exists(marker):
        # train drives 1..n, then one validation drive and one test drive; each drive is its own world
        write_kitti(state.kitti_root, KittiSynthConfig(num_drives=sz.train_drives, num_frames=sz.frames_per_drive,
                                                       size_wh=sz.world_size_wh, seed=seed))
        write_kitti(state.kitti_root, KittiSynthConfig(num_drives=2, num_frames=sz.eval_frames,
                                                       size_wh=sz.world_size_wh, seed=seed + 1000,
                                                       first_drive=sz.train_drives + 1))
        if state.opts.pretrain:
            write_cityscapes(state.cs_root, CityscapesSynthConfig(split="train", num_sequences=1,
                                                                  num_frames=sz.cs_frames, size_wh=sz.cs_size_wh,
                                                                  seed=seed))
        with open(marker, "w") as f:
            f.write("ok\n")
    state.timings["synthesize"] = time.perf_counter() - t


def _drive(state: DemoState, number: int) -> str:
    return f"2011_09_26_drive_{number:04d}_sync"


def _write_split(path: str, drive: str, frames: range) -> str:
    with open(path, "w") as f:
        for i in frames:
            f.write(f"2011_09_26/{drive} {i:010d} l\n")
    return path


def _shard(state: DemoState) -> None:
    from jobs.preprocess import preprocess
    from pipeline.shards.config import ShardConfig

    sz = state.sizes
    t = _stage(state, 1, "WebDataset shards with Ray tasks (train triplets, val/test eval sets with velodyne GT)")
    val_drive, test_drive = _drive(state, sz.train_drives + 1), _drive(state, sz.train_drives + 2)
    split_dir = os.path.join(os.path.abspath(state.opts.workdir), "splits")
    os.makedirs(split_dir, exist_ok=True)
    exclude = os.path.join(split_dir, "eval_scenes.txt")
    with open(exclude, "w") as f:
        f.write(f"{val_drive}\n{test_drive}\n")
    # eval targets skip the first and last frame, like the standard test lists (every target has neighbours)
    frames = range(1, sz.eval_frames - 1)
    val_split = _write_split(os.path.join(split_dir, "val_files.txt"), val_drive, frames)
    test_split = _write_split(os.path.join(split_dir, "test_files.txt"), test_drive, frames)
    w, h = sz.train_size_wh
    ww, wh = sz.world_size_wh
    root = storage.join(state.storage_root, "shards")
    jobs = {
        "kitti-train": ShardConfig(dataset="kitti", input=state.kitti_root, kind="train", split="train",
                                   width=w, height=h, samples_per_shard=64, exclude_scenes_file=exclude,
                                   seed=state.opts.seed),
        "kitti-val": ShardConfig(dataset="kitti", input=state.kitti_root, kind="eval", split="val", width=ww,
                                 height=wh, samples_per_shard=64, split_file=val_split),
        # triplets of the validation drive with their true camera motion (oxts): pose validation during training
        "kitti-val-triplets": ShardConfig(dataset="kitti", input=state.kitti_root, kind="train", split="val",
                                          cameras=("02",), width=w, height=h, samples_per_shard=64,
                                          split_file=val_split),
        "kitti-test": ShardConfig(dataset="kitti", input=state.kitti_root, kind="eval", split="test", width=ww,
                                  height=wh, samples_per_shard=8, split_file=test_split),
    }
    if state.opts.pretrain:
        jobs["cityscapes-train"] = ShardConfig(dataset="cityscapes", input=state.cs_root, kind="train",
                                               split="train", cameras=("left",), width=w, height=h,
                                               samples_per_shard=64, seed=state.opts.seed)
    for name, cfg in jobs.items():
        out = storage.join(root, name)
        summary = preprocess(cfg, out, workers=state.opts.workers, use_ray=True, log=lambda *a: None)
        state.shards[name] = out
        state.shard_summaries[name] = summary
        print(f"    {name}: {summary.num_samples} samples in {len(summary.shards)} shard(s), "
              f"{summary.num_errors} skipped input(s) -> {out}", flush=True)
    state.timings["shard"] = time.perf_counter() - t


def demo_run_config(state: DemoState):
    """tiny_cpu with the demo's shard sets, sizes and options (then the user's --set overrides)."""
    from configs.presets import get_preset
    from engine.config_io import apply_overrides
    from engine.run_config import DataConfig, PretrainConfig

    sz, opts = state.sizes, state.opts
    cfg = get_preset("tiny_cpu")
    cfg = replace(
        cfg,
        name="demo-quick" if opts.quick else "demo",
        data=replace(cfg.data, train_url=state.shards["kitti-train"], val_url=state.shards["kitti-val"],
                     pose_val_url=state.shards["kitti-val-triplets"], val_protocol="kitti-eigen"),
        loader=replace(cfg.loader, loader=opts.loader, width=sz.train_size_wh[0], height=sz.train_size_wh[1],
                       seed=opts.seed),
        train=replace(cfg.train, epochs=sz.epochs, max_steps_per_epoch=sz.steps_per_epoch, seed=opts.seed),
        scaling=replace(cfg.scaling, num_workers=opts.workers, min_workers=0, max_workers=0),
    )
    if opts.pretrain:
        cfg = replace(cfg, pretrain=PretrainConfig(
            epochs=1, data=DataConfig(train_url=state.shards["cityscapes-train"], val_url="",
                                      val_protocol="cityscapes")))
    return apply_overrides(cfg, list(opts.overrides))


def _train(state: DemoState, workdir: str) -> None:
    from jobs.train import train

    cfg = demo_run_config(state)
    state.run_config = cfg
    stages = "Cityscapes pretraining, then KITTI" if state.opts.pretrain else "KITTI"
    t = _stage(state, 2, f"Ray Train, {state.opts.workers} CPU workers, {cfg.loader.loader} loader ({stages})")
    runs = storage.join(state.storage_root, "runs")
    names = ([f"{cfg.name}-pretrain"] if state.opts.pretrain else []) + [cfg.name]
    with _CheckpointWatcher(runs, names):
        state.train_result = train(cfg, storage_path=runs, tensorboard_dir=os.path.join(workdir, "tensorboard"))
    state.timings["train"] = time.perf_counter() - t


class _CheckpointWatcher:
    """Prints a line on the driver for every new checkpoint of the demo's runs (Ray Train's own progress lines are
    printed by its controller actor, whose output the demo does not forward)."""

    def __init__(self, runs_url: str, names: list[str], every_s: float = 5.0):
        import threading

        self.runs_url, self.names, self.every_s = runs_url, names, every_s
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _poll(self) -> None:
        from engine.checkpoint import is_checkpoint_name, read_history

        for name in self.names:
            run = storage.join(self.runs_url, name)
            for ck in storage.listdir(run):
                if not is_checkpoint_name(ck) or f"{name}/{ck}" in self.seen:
                    continue
                self.seen.add(f"{name}/{ck}")
                try:
                    hist = read_history(storage.join(run, ck), missing_ok=False)
                except (OSError, ValueError):
                    self.seen.discard(f"{name}/{ck}")  # not fully written yet: look again next time
                    continue
                loss = hist["train"][-1]["loss"] if hist.get("train") else float("nan")
                val = hist["val"][-1] if hist.get("val") else {}
                shown = (f", val AbsRel {val['val_abs_rel']:.3f} (constant baseline {val['val_baseline_abs_rel']:.3f})"
                         if "val_abs_rel" in val else "")
                print(f"    {name}: {ck}, loss {loss:.4f}{shown}", flush=True)

    def _loop(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                self._poll()
            except Exception:  # a progress display must never break training
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def _evaluate(state: DemoState) -> None:
    from engine.evaluate import make_protocol
    from engine.report import write_eval_outputs
    from jobs.eval_runner import evaluate_checkpoint

    ckpt = state.train_result.best_checkpoint_url or state.train_result.latest_checkpoint_url
    t = _stage(state, 3, f"{state.opts.workers} Ray workers on the held-out test drive (KITTI Eigen protocol)")
    protocol = make_protocol("kitti-eigen")
    res = evaluate_checkpoint(checkpoint=ckpt, data=state.shards["kitti-test"], protocol=protocol,
                              num_workers=state.opts.workers, batch_size=4, baseline=True, grid_samples=4)
    state.eval_result = res
    state.eval_url = storage.join(state.storage_root, "eval", "test")
    write_eval_outputs(state.eval_url, metrics=res.metrics, rows=res.rows, protocol_settings=_asdict(protocol),
                       checkpoint=res.identity, data=state.shards["kitti-test"], baseline=res.baseline,
                       baseline_rows=res.baseline_rows, samples=res.samples)
    state.timings["evaluate"] = time.perf_counter() - t


def _evaluate_pose(state: DemoState, workdir: str) -> None:
    """Ego-motion on the test drive in KITTI odometry layout (sequence 09, converted from the raw drive), with the
    Ray workers, as `rmdepth eval-pose` does it; and the synthetic truth's dense depth error on static vs moving
    pixels of the same drive."""
    from engine.checkpoint import load_nets
    from engine.pose_eval import PoseProtocol, score_sequence
    from engine.pose_report import write_pose_outputs
    from engine.synth_eval import evaluate_synthetic
    from jobs.pose_runner import predict_sequences
    from pipeline.sources.kitti_odometry import load_sequence
    from pipeline.synth.odometry import write_kitti_odometry

    sz = state.sizes
    ckpt = state.train_result.best_checkpoint_url or state.train_result.latest_checkpoint_url
    t = _stage(state, 4, f"ego-motion on the test drive (KITTI odometry layout, {state.opts.workers} Ray workers) "
                         "and depth error on moving objects")
    test_drive = f"2011_09_26/{_drive(state, sz.train_drives + 2)}"
    odometry = os.path.join(workdir, "kitti_odometry")
    write_kitti_odometry(odometry, state.kitti_root, drives=(test_drive,), first_sequence=9)
    seq = load_sequence(odometry, "09", "kitti-odometry")
    protocol = PoseProtocol(rpe_lengths=(5.0, 10.0, 20.0), rpe_step=1)  # a 2 s drive: devkit segments of 5-20 m
    pred = predict_sequences(checkpoint=ckpt, sequences=[seq], num_workers=state.opts.workers, batch_size=4)
    score = score_sequence(seq.name, pred.motions[seq.name], seq.poses_F44, protocol=protocol)
    state.pose_url = storage.join(state.storage_root, "eval", "pose")
    state.pose_summary = write_pose_outputs(
        state.pose_url, scores=[score], predictions=pred.motions, protocol_settings=protocol.settings(),
        checkpoint={**pred.identity, "input_size_wh": list(pred.size_wh)}, data=odometry, layout="kitti-odometry",
        gt_sources={seq.name: seq.gt_source})
    nets, cfg, _ = load_nets(ckpt)
    state.synth_metrics = evaluate_synthetic(nets, state.kitti_root, size_wh=(cfg.loader.width, cfg.loader.height),
                                             drives=(test_drive,))
    state.timings["pose"] = time.perf_counter() - t


def _asdict(obj: Any) -> dict[str, Any]:
    from engine.config_io import to_dict

    return to_dict(obj)


def _pictures(state: DemoState, workdir: str) -> None:
    """Run both networks on test-drive triplets: input, predicted depth, true depth, motion field, flow."""
    import numpy as np
    import torch
    from PIL import Image

    from engine.checkpoint import load_nets
    from model.train_step import visuals
    from pipeline.intrinsics import resize_K
    from pipeline.sources.calib import cam_intrinsics, read_calib
    from pipeline.synth import load_truth, truth_path

    t = _stage(state, 5, "depth, motion field and flow on test-drive triplets")
    sz = state.sizes
    ckpt = state.train_result.best_checkpoint_url or state.train_result.latest_checkpoint_url
    nets, cfg, _ = load_nets(ckpt)
    nets.eval()
    drive = _drive(state, sz.train_drives + 2)
    image_dir = os.path.join(state.kitti_root, "2011_09_26", drive, "image_02", "data")
    calib_url = os.path.join(state.kitti_root, "2011_09_26", "calib_cam_to_cam.txt")
    K_full, _ = cam_intrinsics(read_calib(calib_url), "02", source=calib_url)
    w, h = cfg.loader.width, cfg.loader.height
    K = torch.tensor(resize_K(K_full, sz.world_size_wh, (w, h)), dtype=torch.float32)[None]
    targets = np.linspace(1, sz.eval_frames - 2, num=min(4, sz.eval_frames - 2)).round().astype(int)
    for idx in sorted(set(targets.tolist())):
        paths = [os.path.join(image_dir, f"{i:010d}.png") for i in (idx - 1, idx, idx + 1)]
        frames = [np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.Resampling.BILINEAR), np.float32) / 255.0
                  for p in paths]
        frames_SCHW = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)[None]
        with torch.no_grad():
            out = visuals(nets(frames_SCHW, K, motion_scale=1.0), K)
        truth = load_truth(truth_path(paths[1]))
        state.pictures.append({
            "key": f"{drive} frame {idx}",
            "image": frames[1],
            "pred_depth": out.depth_B1HW[0, 0].numpy(),
            "true_depth": truth.depth,
            "moving": truth.moving,
            "motion_field": out.motion_field_B3HW[0],
            "flow": out.flow_B2HW[0],
        })
    state.timings["pictures"] = time.perf_counter() - t
