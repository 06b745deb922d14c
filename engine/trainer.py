"""The training loop: resume or initialise, train, validate, checkpoint, log. No Ray (see engine/runtime.py).

Shape legend: B per-rank batch, S = 3 frames, H, W network resolution.

Resume (after a worker failure, an elastic resize or a driver restart) always starts from the latest committed
checkpoint that `runtime.latest_checkpoint()` returns (engine.checkpoint.TrainState.resume_or_init):
  * same world size: exact continuation - nets, optimizer, LR schedule, RNG state of every rank and the loader
    position (epoch, batch) are restored, so N steps + resume + N steps == 2N uninterrupted steps;
  * different world size (elastic): nets, optimizer and schedule are restored; the epoch position is remapped by
    samples (TrainState.remap_position); RNGs are re-seeded from (seed, rank, step); the learning rate follows the
    new world size (engine/config.py).
Test-only fault point `train_step` (pipeline/faults.py): a rank can be made to fail right after optimizer step N.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.checkpoint import TrainPosition, TrainState, checkpoint_name
from engine.config_io import to_json
from engine.data import Loaders
from engine.evaluate import make_protocol
from engine.logger import TrainLogger
from engine.rng import capture_rng_state
from engine.runtime import Runtime, compute_dtype
from engine.validate import validate, validate_pose
from model.train_step import train_step, visuals
from pipeline import faults

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


def fit(cfg: Any, runtime: Runtime, *, loaders: LoaderFactory, run_name: str, code_version: str = "unknown",
        tensorboard_dir: str = "", tensorboard_upload_url: str = "") -> FitResult:
    """Train `cfg` (an engine.run_config.RunConfig) on this rank until `cfg.train.epochs` epochs are done."""
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    state = TrainState.resume_or_init(cfg, runtime)
    run = _Run(cfg, runtime, state, loaders(cfg, runtime.rank, runtime.world_size), run_name=run_name,
               code_version=code_version, log_dir=tensorboard_dir, upload_url=tensorboard_upload_url)
    try:
        for epoch in range(state.position.epoch, cfg.train.epochs):
            start = state.start_epoch(epoch, global_batch=run.global_batch)
            batches = iter(run.data.train.epoch_iterator(epoch, start))
            for _ in range(start, run.steps_per_epoch):
                t0 = time.perf_counter()
                batch = next(batches)  # the wait for the loader is part of the data-wait figure
                run.step(batch, waited_s=time.perf_counter() - t0)
                if state.position.step_in_epoch < run.steps_per_epoch:
                    run.checkpoint_if_due()
                faults.inject("train_step", index=state.position.step, rank=runtime.rank)
            del batches
            run.logger.flush_window(step=state.position.step, epoch=epoch, step_in_epoch=run.steps_per_epoch,
                                    steps_per_epoch=run.steps_per_epoch, lr=state.schedule.last_lr)
            state.end_epoch()
            run.checkpoint(validate=True)
    finally:
        run.logger.close()
    return FitResult(position=state.position, history=run.logger.history, val_history=state.val_history,
                     resumed_from_step=state.resumed_from)


class _Run:
    """What the loop works with: the (DDP-wrapped) model, the loaders, the logger, validation and checkpointing."""

    def __init__(self, cfg: Any, runtime: Runtime, state: TrainState, data: Loaders, *, run_name: str,
                 code_version: str, log_dir: str, upload_url: str):
        self.cfg, self.runtime, self.state, self.data = cfg, runtime, state, data
        self.run_name, self.code_version = run_name, code_version
        self.global_batch = cfg.loader.batch_size * runtime.world_size
        self.steps_per_epoch = _steps_per_epoch(cfg, data, runtime.world_size)
        self.total_steps = cfg.train.epochs * self.steps_per_epoch
        state.remap_position(world_size=runtime.world_size, global_batch=self.global_batch,
                             steps_per_epoch=self.steps_per_epoch)
        if state.resumed_from is not None and runtime.is_main:
            print(f"[rmdepth train {run_name}] resumed from step {state.resumed_from} -> epoch {state.position.epoch} "
                  f"batch {state.position.step_in_epoch}, world size {runtime.world_size}", flush=True)
        self.model = runtime.wrap_model(state.nets, find_unused_parameters=cfg.train.find_unused_parameters)
        self.compute_dtype = compute_dtype(cfg.train.precision, runtime.device)
        if runtime.is_main:
            print(f"[rmdepth train {run_name}] precision {cfg.train.precision}: networks in "
                  f"{'bfloat16 mixed precision' if self.compute_dtype else 'float32'} on {runtime.device.type}", flush=True)
            if self.compute_dtype is not None and cfg.loss.scale_resolution == "native":
                print(f"[rmdepth train {run_name}] warning: bfloat16 with loss.scale_resolution=native collapsed 3 of 4 "
                      "tiny_cpu runs on the learning benchmark (BENCHMARKS.md); use float32 or scale_resolution=full",
                      flush=True)
        self.model.train()
        self.protocol = make_protocol(cfg.data.val_protocol)
        self.logger = TrainLogger(enabled=runtime.is_main, upload_url=upload_url, total_steps=self.total_steps,
                                  name=run_name,
                                  log_dir=log_dir or os.path.join(tempfile.gettempdir(), "rmdepth-tb", run_name))
        self.logger.history = state.history
        self.config_json = to_json(cfg)

    def step(self, batch, *, waited_s: float = 0.0) -> None:
        """One optimizer step on `batch`, then its logs (and pictures when due). `waited_s`: how long the loop
        waited for the batch; with the copy to the device it is the step's data wait."""
        t0 = time.perf_counter()
        batch = batch.to(self.runtime.device, non_blocking=True)
        data_wait = waited_s + time.perf_counter() - t0
        self.count_bad_samples(batch.bad_samples)
        state, tcfg, p = self.state, self.cfg.train, self.state.position
        lr = state.schedule.apply(samples_seen=p.samples_seen, epoch=p.epoch)
        out = train_step(self.model, state.optimizer, batch, self.cfg.loss, step=p.step, total_steps=self.total_steps,
                         grad_clip_norm=self.cfg.optim.grad_clip_norm,
                         compute_dtype=self.compute_dtype)
        state.stepped(global_batch=self.global_batch)
        step = state.position.step
        self.logger.step(logs=out.logs, samples=self.global_batch, data_wait_s=data_wait)
        if step % tcfg.log_every_steps == 0:
            self.logger.flush_window(step=step, epoch=p.epoch, step_in_epoch=state.position.step_in_epoch,
                                     steps_per_epoch=self.steps_per_epoch, lr=lr)
        if tcfg.image_every_steps and step % tcfg.image_every_steps == 0:
            self.logger.images(step=step, frames_aug_BSCHW=batch.frames_aug_BSCHW,
                               visuals=visuals(out.outputs, batch.K_B33))

    def count_bad_samples(self, found: tuple[str, ...]) -> None:
        """Name each damaged sample once; stop the run when there are more than loader.max_bad_samples."""
        for description in found:
            if description in self.state.bad_samples:
                continue
            self.state.bad_samples.append(description)
            print(f"[rmdepth train {self.run_name}] rank {self.runtime.rank} skipped a damaged training sample "
                  f"({len(self.state.bad_samples)} so far): {description}", flush=True)
            limit = self.cfg.loader.max_bad_samples
            if len(self.state.bad_samples) > limit:
                raise RuntimeError(f"more than loader.max_bad_samples={limit} damaged training samples; the last: "
                                   f"{description}")

    def checkpoint_if_due(self) -> None:
        """Within an epoch: validate + checkpoint every `val_every_steps`, else checkpoint every `every_steps`."""
        step, tcfg = self.state.position.step, self.cfg.train
        if tcfg.val_every_steps and step % tcfg.val_every_steps == 0:
            self.checkpoint(validate=True)
        elif self.cfg.checkpoint.every_steps and step % self.cfg.checkpoint.every_steps == 0:
            self.checkpoint(validate=False)

    def validation(self) -> dict[str, float]:
        tcfg, data, p = self.cfg.train, self.data, self.state.position
        if not tcfg.validate or (data.val is None and data.pose_val is None):
            return {}
        metrics: dict[str, float] = {}
        if data.val is not None:
            metrics = validate(self.model, data.val.epoch_iterator(0, 0), self.runtime, self.protocol,
                               max_batches=tcfg.val_max_batches, max_bad_frames=self.cfg.loader.max_bad_samples)
        if data.pose_val is not None:
            metrics.update(validate_pose(self.model, data.pose_val.epoch_iterator(0, 0), self.runtime,
                                         max_batches=tcfg.val_max_batches))
        self.logger.validation(step=p.step, metrics=metrics)
        self.state.val_history.append({"step": p.step, "epoch": p.epoch, **metrics})
        return metrics

    def checkpoint(self, *, validate: bool) -> None:
        """(Validate, then) save the state on rank 0 and report it; every rank calls this equally often."""
        metrics = self.validation() if validate else {}
        state, p = self.state, self.state.position
        rngs = self.runtime.all_gather_object(capture_rng_state())
        every_rank = self.runtime.all_gather_object(state.bad_samples)
        state.bad_samples = list(dict.fromkeys(d for rank_list in every_rank for d in rank_list))
        report = {"step": p.step, "epoch": p.epoch, "samples_seen": p.samples_seen,
                  "world_size": self.runtime.world_size, "lr": state.schedule.last_lr,
                  "bad_samples": len(state.bad_samples),
                  **({"loss": state.history[-1]["loss"]} if state.history else {}), **metrics}
        report.setdefault(self.cfg.checkpoint.score_metric, math.inf)
        tmp = tempfile.mkdtemp(prefix="rmdepth-save-") if self.runtime.is_main else None
        try:
            if tmp is not None:
                state.save(tmp, rng_states=rngs, config_json=self.config_json,
                           identity={"run_name": self.run_name, "code_version": self.code_version,
                                     "seed": self.cfg.train.seed, "global_batch": self.global_batch,
                                     "metrics": report})
                self.logger.sync()
            self.runtime.report(report, checkpoint_dir=tmp, checkpoint_name=checkpoint_name(p))
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)


def _steps_per_epoch(cfg: Any, data: Loaders, world_size: int) -> int:
    steps = data.train.num_batches_per_epoch
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    if steps < 1:
        raise ValueError(f"training shard set {cfg.data.train_url} gives no full batch per rank at world size "
                         f"{world_size}")
    return steps
