"""The training loop: resume or initialise, train, validate, checkpoint, log. No Ray (see engine/runtime.py).

Shape legend: B per-rank batch, S = 3 frames, H, W network resolution.

Resume (after a worker failure, an elastic resize or a driver restart) always starts from the latest committed
checkpoint that `runtime.latest_checkpoint()` returns:
  * same world size: exact continuation - nets, optimizer, LR schedule, RNG state of every rank and the loader
    position (epoch, batch) are restored, so N steps + resume + N steps == 2N uninterrupted steps;
  * different world size (elastic): nets, optimizer and schedule are restored; the epoch position is remapped by
    samples: the new rank-local start batch is ceil(samples already consumed in this epoch / new global batch)
    (no sample of the epoch is trained on twice; at most one global batch of it is skipped); RNGs are re-seeded
    from (seed, rank, step); the learning rate follows the new world size (engine/config.py).
Test-only fault point `train_step` (pipeline/faults.py): a rank can be made to fail right after optimizer step N.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from engine.checkpoint import (
    TrainPosition,
    capture_rng_state,
    checkpoint_name,
    load_training_state,
    load_weights,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from engine.config_io import to_json
from engine.data import Loaders
from engine.evaluate import make_protocol
from engine.logger import TrainLogger
from engine.optim import LRSchedule, build_optimizer
from engine.runtime import Runtime
from engine.validate import validate, validate_pose
from model.nets import build_nets
from model.train_step import train_step, visuals
from pipeline import faults, storage

HISTORY_FILE = "history.json"


# (run_cfg, rank, world_size) -> engine.data.Loaders (train, depth val or None, pose val or None)
LoaderFactory = Callable[[Any, int, int], Loaders]


@dataclass(kw_only=True)
class FitResult:
    position: TrainPosition
    history: list[dict[str, Any]] = field(default_factory=list)
    """Training log rows (step, epoch, loss, lr, samples_per_s, ...), from the start of the run (across resumes)."""
    val_history: list[dict[str, Any]] = field(default_factory=list)
    """Validation rows (step, epoch, val_* metrics)."""
    resumed_from_step: int | None = None


def _start_position(position: TrainPosition, *, world_size: int, global_batch: int, steps_per_epoch: int) -> TrainPosition:
    """Remap a checkpoint position to the current world size (identity when it did not change)."""
    if position.world_size == world_size:
        return position
    start = math.ceil(position.epoch_samples / global_batch) if position.epoch_samples else 0
    if start >= steps_per_epoch:
        return replace(position, epoch=position.epoch + 1, step_in_epoch=0, epoch_samples=0, world_size=world_size)
    return replace(position, step_in_epoch=start, epoch_samples=start * global_batch, world_size=world_size)


def _load_init(url: str, nets: nn.Module) -> dict[str, Any]:
    """Initialise both nets from another run's checkpoint (e.g. Cityscapes pretraining); returns its identity."""
    if storage.is_remote(url):
        with tempfile.TemporaryDirectory(prefix="rmdepth-init-") as tmp:
            storage.get_file(storage.join(url, "model.pt"), os.path.join(tmp, "model.pt"))
            return load_weights(tmp, nets)
    return load_weights(storage.strip_file_scheme(url), nets)


def fit(
    cfg: Any,
    runtime: Runtime,
    *,
    loaders: LoaderFactory,
    run_name: str,
    code_version: str = "unknown",
    tensorboard_dir: str = "",
    tensorboard_upload_url: str = "",
) -> FitResult:
    """Train `cfg` (a engine.run_config.RunConfig) on this rank until `cfg.train.epochs` epochs are done."""
    tcfg, ccfg = cfg.train, cfg.checkpoint
    rank, world = runtime.rank, runtime.world_size
    if tcfg.num_threads:
        torch.set_num_threads(tcfg.num_threads)
    seed_everything(tcfg.seed)  # identical initial weights on every rank
    nets = build_nets(cfg.depth, cfg.motion)
    if world > 1 and tcfg.sync_batchnorm and runtime.device.type == "cuda":
        nets = nn.SyncBatchNorm.convert_sync_batchnorm(nets)
    nets.to(runtime.device)
    optimizer = build_optimizer(nets, cfg.optim)
    schedule = LRSchedule(optimizer, cfg.optim, world_size=world)

    position = TrainPosition(world_size=world)
    history: list[dict[str, Any]] = []
    val_history: list[dict[str, Any]] = []
    resumed_from: int | None = None
    parent = ""
    with runtime.latest_checkpoint() as ckpt_dir:
        if ckpt_dir:
            position, sched_state, rng_states, identity = load_training_state(ckpt_dir, nets=nets, optimizer=optimizer)
            schedule.load_state_dict(sched_state)
            resumed_from = position.step
            parent = identity.get("parent_checkpoint", "")
            hist_path = os.path.join(ckpt_dir, HISTORY_FILE)
            if os.path.exists(hist_path):
                with open(hist_path) as f:
                    saved = json.load(f)
                history, val_history = saved["train"], saved["val"]
            if position.world_size == world and len(rng_states) == world:
                restore_rng_state(rng_states[rank])
            else:
                seed_everything(tcfg.seed + 1000 * rank + 7919 * position.step)
    if resumed_from is None:
        seed_everything(tcfg.seed + 1000 * rank)
        if cfg.init_checkpoint:
            _load_init(cfg.init_checkpoint, nets)
            parent = cfg.init_checkpoint

    train_loader, val_loader, pose_val_loader = loaders(cfg, rank, world)
    batch_size = cfg.loader.batch_size
    global_batch = batch_size * world
    steps_per_epoch = train_loader.num_batches_per_epoch
    if tcfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, tcfg.max_steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"training shard set {cfg.data.train_url} gives no full batch per rank at world size {world}")
    position = _start_position(position, world_size=world, global_batch=global_batch, steps_per_epoch=steps_per_epoch)
    if resumed_from is not None and rank == 0:
        print(
            f"[rmdepth train {run_name}] resumed from step {resumed_from} -> epoch {position.epoch} "
            f"batch {position.step_in_epoch}, world size {world}",
            flush=True,
        )

    total_steps = tcfg.epochs * steps_per_epoch
    model = runtime.wrap_model(nets, find_unused_parameters=tcfg.find_unused_parameters)
    model.train()
    protocol = make_protocol(cfg.data.val_protocol)
    log_dir = tensorboard_dir or os.path.join(tempfile.gettempdir(), "rmdepth-tb", run_name)
    logger = TrainLogger(
        enabled=runtime.is_main,
        log_dir=log_dir,
        upload_url=tensorboard_upload_url,
        total_steps=total_steps,
        name=run_name,
    )
    logger.history = history
    config_json = to_json(cfg)

    def run_validation() -> dict[str, float]:
        if not tcfg.validate or (val_loader is None and pose_val_loader is None):
            return {}
        metrics = {}
        if val_loader is not None:
            metrics = validate(model, val_loader.epoch_iterator(0, 0), runtime, protocol, max_batches=tcfg.val_max_batches)
        if pose_val_loader is not None:
            metrics.update(validate_pose(model, pose_val_loader.epoch_iterator(0, 0), runtime,
                                         max_batches=tcfg.val_max_batches))
        logger.validation(step=position.step, metrics=metrics)
        val_history.append({"step": position.step, "epoch": position.epoch, **metrics})
        return metrics

    def save(metrics: dict[str, float]) -> None:
        rngs = runtime.all_gather_object(capture_rng_state())
        report = {
            "step": position.step,
            "epoch": position.epoch,
            "samples_seen": position.samples_seen,
            "world_size": world,
            "lr": schedule.last_lr,
            **({"loss": history[-1]["loss"]} if history else {}),
            **metrics,
        }
        report.setdefault(ccfg.score_metric, math.inf)
        name = checkpoint_name(position)
        tmp = tempfile.mkdtemp(prefix="rmdepth-save-") if runtime.is_main else None
        try:
            if tmp is not None:
                save_checkpoint(
                    tmp,
                    nets=nets,
                    optimizer=optimizer,
                    scheduler_state=schedule.state_dict(),
                    position=position,
                    rng_states=rngs,
                    config_json=config_json,
                    identity={
                        "run_name": run_name,
                        "code_version": code_version,
                        "seed": tcfg.seed,
                        "parent_checkpoint": parent,
                        "global_batch": global_batch,
                        "metrics": report,
                    },
                )
                with open(os.path.join(tmp, HISTORY_FILE), "w") as f:
                    json.dump({"train": history, "val": val_history}, f, default=float)
                logger.sync()
            runtime.report(report, checkpoint_dir=tmp, checkpoint_name=name)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    try:
        for epoch in range(position.epoch, tcfg.epochs):
            start = position.step_in_epoch if epoch == position.epoch else 0
            position = replace(position, epoch=epoch, step_in_epoch=start, epoch_samples=start * global_batch)
            batches = iter(train_loader.epoch_iterator(epoch, start))
            for i in range(start, steps_per_epoch):
                t0 = time.perf_counter()
                batch = next(batches).to(runtime.device, non_blocking=True)
                data_wait = time.perf_counter() - t0
                lr = schedule.apply(samples_seen=position.samples_seen, epoch=epoch)
                out = train_step(model, optimizer, batch, cfg.loss, step=position.step, total_steps=total_steps,
                                 grad_clip_norm=cfg.optim.grad_clip_norm)
                position = replace(
                    position,
                    step=position.step + 1,
                    step_in_epoch=i + 1,
                    samples_seen=position.samples_seen + global_batch,
                    epoch_samples=position.epoch_samples + global_batch,
                )
                logger.step(step=position.step, epoch=epoch, logs=out.logs, lr=lr, samples=global_batch, data_wait_s=data_wait)
                if position.step % tcfg.log_every_steps == 0:
                    logger.flush_window(step=position.step, epoch=epoch, step_in_epoch=i + 1, steps_per_epoch=steps_per_epoch, lr=lr)
                if tcfg.image_every_steps and position.step % tcfg.image_every_steps == 0:
                    logger.images(step=position.step, frames_aug_BSCHW=batch.frames_aug_BSCHW,
                                  visuals=visuals(out.outputs, batch.K_B33))
                last_in_epoch = i + 1 == steps_per_epoch
                if not last_in_epoch:
                    if tcfg.val_every_steps and position.step % tcfg.val_every_steps == 0:
                        save(run_validation())
                    elif ccfg.every_steps and position.step % ccfg.every_steps == 0:
                        save({})
                faults.inject("train_step", index=position.step, rank=rank)
            del batches
            logger.flush_window(
                step=position.step, epoch=epoch, step_in_epoch=steps_per_epoch, steps_per_epoch=steps_per_epoch, lr=schedule.last_lr
            )
            position = replace(position, epoch=epoch + 1, step_in_epoch=0, epoch_samples=0)
            save(run_validation())
    finally:
        logger.close()
    return FitResult(position=position, history=logger.history, val_history=val_history, resumed_from_step=resumed_from)
