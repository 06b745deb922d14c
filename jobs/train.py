"""Train RM-Depth with Ray Train (TorchTrainer, Train V2): DDP over N workers (NCCL on GPU, gloo on CPU), elastic
worker counts, automatic restarts from the latest checkpoint, checkpoints and TensorBoard logs on object storage.

  rmdepth train --preset tiny_cpu --set data.train_url=work/shards/train --set data.val_url=work/shards/val
  ray job submit --working-dir . -- python -m jobs.train --preset kitti_640x192 --storage-path s3://bucket/runs

Re-running with the same --name and --storage-path resumes the run from its latest checkpoint. Checkpoints are kept
by Ray: the --keep (checkpoint.keep_top_k) best by validation AbsRel plus always the latest. A preset with a
pretraining stage (cs_then_kitti) first trains `<name>-pretrain` on `pretrain.data`, then fine-tunes `<name>` from the
pretraining run's best checkpoint (recorded as `parent_checkpoint` in every checkpoint of the second stage).
Test-only fault seam: RMDEPTH_FAULT (pipeline/faults.py). S3 endpoint/credentials come from the
environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from jobs import config_args
from jobs.cli import run_module
from jobs.config_args import add_config_arguments, alias
from jobs.errors import JobError, UsageError

# Environment variables forwarded to the Ray workers (no secrets: credentials must already be in the workers' env).
FORWARDED_ENV_PREFIXES = ("RMDEPTH_",)
FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED", "NO_PROXY", "no_proxy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="", help="named preset (see --list-presets), e.g. tiny_cpu, kitti_640x192")
    add_config_arguments(parser, config_help="a RunConfig JSON file (e.g. config.json of a checkpoint) instead of "
                                             "--preset", example="optim.lr=2e-4")
    alias(parser, "--name", field="name",
          help="run name (default: the config's name); the same name resumes the run")
    parser.add_argument("--storage-path", default="",
                        help="where runs live: local dir or s3://bucket/prefix (default: $RMDEPTH_STORAGE or ./runs)")
    alias(parser, "--num-workers", field="scaling.num_workers", metavar="N",
          to_overrides=lambda n: [f"scaling.num_workers={n}", "scaling.min_workers=0", "scaling.max_workers=0"],
          stands_for="scaling.num_workers=N --set scaling.min_workers=0 --set scaling.max_workers=0",
          help="a fixed number of training workers")
    alias(parser, "--elastic", field="scaling.min_workers", metavar="MIN,MAX", to_overrides=_elastic_overrides,
          stands_for="scaling.min_workers=MIN --set scaling.max_workers=MAX", help="elastic worker range, e.g. 1,4")
    alias(parser, "--use-gpu", field="scaling.use_gpu", value="true", help="one GPU per worker (NCCL)")
    parser.add_argument("--address", default="", help="Ray address (default: $RAY_ADDRESS, else a local Ray instance)")
    parser.add_argument("--tensorboard-dir", default="", help="local TensorBoard dir of rank 0 (also copied under the run)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config JSON and exit")
    parser.add_argument("--list-presets", action="store_true", help="list the preset names and exit")


@dataclass(kw_only=True)
class TrainResult:
    run_name: str
    run_url: str
    """`<storage_path>/<run_name>`: checkpoints, Ray's run state and tensorboard/."""
    best_checkpoint_url: str | None
    """Best kept checkpoint by validation AbsRel (the latest one when nothing was validated)."""
    latest_checkpoint_url: str | None
    final_step: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """Validation rows (step, epoch, val_* metrics incl. the constant-depth baseline)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Training log rows (step, epoch, loss, lr, samples_per_s, data_wait_fraction): the loss curve."""
    parent: TrainResult | None = None
    """The pretraining stage, when the config has one."""


def _elastic_overrides(text: str) -> list[str]:
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"expected MIN,MAX, got {text!r}") from None
    return [f"scaling.min_workers={lo}", f"scaling.max_workers={hi}"]


def resolve_config(args: argparse.Namespace):
    """The RunConfig of this command line: --preset NAME or --config FILE, then the overrides in order."""
    from configs.presets import get_preset
    from engine.run_config import RunConfig

    if bool(args.preset) == bool(args.config):
        raise UsageError("give exactly one of --preset NAME or --config FILE")
    return config_args.resolve_config(RunConfig, args, base=get_preset(args.preset) if args.preset else None)


def default_storage_path() -> str:
    return os.environ.get("RMDEPTH_STORAGE") or os.path.abspath("runs")


def run(args: argparse.Namespace) -> int:
    if args.list_presets:
        from configs.presets import list_presets

        print("\n".join(list_presets()))
        return 0
    from engine.config_io import to_json

    cfg = resolve_config(args)
    if args.print_config:
        print(to_json(cfg))
        return 0
    if args.address:
        os.environ["RAY_ADDRESS"] = args.address
    import ray.train

    try:
        result = train(cfg, storage_path=args.storage_path or default_storage_path(), tensorboard_dir=args.tensorboard_dir)
    except ray.train.TrainingFailedError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        cause = next((ln.strip() for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "")
        raise JobError(f"training run {cfg.name} failed after retries: {cause} (worker logs have the details)") from e
    best = min(result.metrics, key=lambda m: m["val_abs_rel"]) if result.metrics else {}
    print(
        json.dumps(
            {
                "run": result.run_url,
                "final_step": result.final_step,
                "best_checkpoint": result.best_checkpoint_url,
                "latest_checkpoint": result.latest_checkpoint_url,
                "best_val_abs_rel": best.get("val_abs_rel"),
                "best_val_step": best.get("step"),
                "val_baseline_abs_rel": best.get("val_baseline_abs_rel"),
            },
            indent=2,
        )
    )
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Driver side
def train(
    run_cfg,
    *,
    storage_path: str,
    run_name: str = "",
    num_workers: int | None = None,
    tensorboard_dir: str = "",
    ray_init_kwargs: dict | None = None,
) -> TrainResult:
    """Train `run_cfg` (engine.run_config.RunConfig) under Ray Train; resumes `<storage_path>/<run_name>` if it exists.

    Starts a local Ray instance (or connects to $RAY_ADDRESS) when Ray is not initialised yet. `num_workers`
    overrides `scaling.num_workers` (fixed size). With `pretrain.epochs > 0` the pretraining stage runs first as
    `<run_name>-pretrain` (resumable on its own) and the main stage starts from its best checkpoint.
    """
    from pipeline import storage

    name = run_name or run_cfg.name
    if num_workers:
        run_cfg = replace(run_cfg, scaling=replace(run_cfg.scaling, num_workers=num_workers, min_workers=0, max_workers=0))
    if not storage.is_remote(storage_path):
        storage_path = os.path.abspath(storage.strip_file_scheme(storage_path))
    from jobs.ray_cluster import ray_session

    check_data(run_cfg.data, "data")
    stage1 = pretrain_stage(run_cfg, name)
    if stage1 is not None:
        check_data(stage1.data, "pretrain.data")
    with ray_session(log_to_driver=True, **(ray_init_kwargs or {})):
        parent = None
        if stage1 is not None:
            parent = _train_stage(stage1, stage1.name, storage_path, tensorboard_dir)
            if parent.best_checkpoint_url is None:
                raise RuntimeError(f"pretraining run {parent.run_url} produced no checkpoint")
            run_cfg = replace(run_cfg, init_checkpoint=parent.best_checkpoint_url)
        result = _train_stage(run_cfg, name, storage_path, tensorboard_dir)
    result.parent = parent
    return result


def pretrain_stage(run_cfg, name: str):
    """The RunConfig of the pretraining stage (`<name>-pretrain` on `pretrain.data`), or None when there is none.

    The main stage then starts from the pretraining run's best checkpoint (`init_checkpoint`, recorded as the parent).
    """
    if run_cfg.pretrain.epochs <= 0 or run_cfg.init_checkpoint:
        return None
    return replace(
        run_cfg,
        name=f"{name}-pretrain",
        data=run_cfg.pretrain.data,
        train=replace(run_cfg.train, epochs=run_cfg.pretrain.epochs),
        pretrain=replace(run_cfg.pretrain, epochs=0),
    )


def check_data(data, where: str) -> None:
    """Fail before starting Ray when a shard set is not given or not complete (summary.json is written last)."""
    from pipeline import storage
    from pipeline.schema import SUMMARY_FILE

    if not data.train_url:
        raise ValueError(f"{where}.train_url is empty: pass --set {where}.train_url=<train shard set dir or s3:// prefix>")
    for field_name in ("train_url", "val_url", "pose_val_url"):
        url = getattr(data, field_name)
        if url and not storage.exists(storage.join(url, SUMMARY_FILE)):
            raise FileNotFoundError(f"{where}.{field_name}={url}: no {SUMMARY_FILE} (not a complete shard set)")


def _worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in FORWARDED_ENV or k.startswith(FORWARDED_ENV_PREFIXES)}


def _train_stage(cfg, name: str, storage_path: str, tensorboard_dir: str) -> TrainResult:
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from engine.checkpoint import read_history
    from engine.config_io import to_json
    from pipeline import storage
    from pipeline.version import code_version

    sc = cfg.scaling
    workers = (sc.min_workers, sc.max_workers) if sc.elastic else sc.num_workers
    resources = {"CPU": sc.cpus_per_worker, **({"GPU": 1} if sc.use_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker=_worker_fn,
        train_loop_config={
            "run_config_json": to_json(cfg),
            "run_name": name,
            "code_version": code_version(),
            "tensorboard_dir": tensorboard_dir,
            "tensorboard_upload_url": storage.join(storage_path, name, "tensorboard"),
        },
        # Ray Train V2 (the default of the pinned Ray) picks ray.train.ScalingConfig/RunConfig at import time
        # (elastic (min, max) workers, worker_runtime_env); type checkers see the V1 (ray.air) signatures.
        scaling_config=ray.train.ScalingConfig(  # type: ignore[call-arg]
            num_workers=workers,  # type: ignore[arg-type]
            use_gpu=sc.use_gpu,
            resources_per_worker=resources,
            elastic_resize_monitor_interval_s=sc.resize_check_interval_s,
        ),
        run_config=ray.train.RunConfig(  # type: ignore[call-arg]
            name=name,
            storage_path=storage_path,
            failure_config=ray.train.FailureConfig(max_failures=sc.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=cfg.checkpoint.keep_top_k,
                checkpoint_score_attribute=cfg.checkpoint.score_metric,
                checkpoint_score_order="min",
            ),
            worker_runtime_env={"env_vars": _worker_env()},
            callbacks=[_progress_callback()],
        ),
    )
    result = trainer.fit()
    run_url = storage.join(storage_path, name)

    def url(ck) -> str:
        return storage.join(run_url, os.path.basename(ck.path.rstrip("/")))

    latest = url(result.checkpoint) if result.checkpoint is not None else None
    best = latest
    scored = [(m.get(cfg.checkpoint.score_metric, math.inf), ck) for ck, m in (result.best_checkpoints or [])]
    scored = [(s, ck) for s, ck in scored if s is not None and math.isfinite(s)]
    if scored:
        best = url(min(scored, key=lambda t: t[0])[1])
    history = read_history(latest) if latest is not None else {"train": [], "val": []}
    final_step = int(result.metrics.get("step", 0)) if result.metrics else 0
    return TrainResult(
        run_name=name,
        run_url=run_url,
        best_checkpoint_url=best,
        latest_checkpoint_url=latest,
        final_step=final_step,
        metrics=history["val"],
        history=history["train"],
    )


def _progress_callback():
    from ray.train import UserCallback

    class Progress(UserCallback):
        """Prints one line per reported checkpoint on the Ray Train controller (driver node)."""

        def after_report(self, run_context, metrics, checkpoint):
            m = metrics[0] if metrics else {}
            score = m.get("val_abs_rel", math.inf)
            shown = f" val_abs_rel {score:.4f}" if math.isfinite(score) else ""
            print(
                f"[rmdepth train] checkpoint step {m.get('step')} epoch {m.get('epoch')} "
                f"world {m.get('world_size')} loss {m.get('loss', float('nan')):.4f}{shown}",
                flush=True,
            )

    return Progress()


# ---------------------------------------------------------------------------------------------------------------
# Worker side
def _worker_fn(config: dict[str, Any]) -> None:
    import tempfile
    from contextlib import contextmanager

    import ray.train
    import ray.train.torch

    from engine.config_io import from_json
    from engine.data import build_loaders
    from engine.run_config import RunConfig
    from engine.runtime import DistributedRuntime
    from engine.trainer import fit

    cfg = from_json(RunConfig, config["run_config_json"])
    ctx = ray.train.get_context()

    def report_fn(metrics: dict[str, float], checkpoint_dir: str | None, checkpoint_name: str) -> None:
        ck = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ck, checkpoint_dir_name=checkpoint_name)

    @contextmanager
    def checkpoint_fn():
        ck = ray.train.get_checkpoint()
        if ck is None:
            yield None
            return
        # A private copy per worker: `as_directory()` shares one download dir between the workers of a node, and a
        # worker could read a file another is still writing (seen with S3 storage: a truncated train_state.pt).
        with tempfile.TemporaryDirectory(prefix=f"rmdepth-ckpt-r{ctx.get_world_rank()}-") as d:
            ck.to_directory(d)
            yield d

    runtime = DistributedRuntime(
        rank=ctx.get_world_rank(),
        world_size=ctx.get_world_size(),
        local_rank=ctx.get_local_rank(),
        device=ray.train.torch.get_device(),
        report_fn=report_fn,
        checkpoint_fn=checkpoint_fn,
    )
    fit(
        cfg,
        runtime,
        loaders=build_loaders,
        run_name=config["run_name"],
        code_version=config["code_version"],
        tensorboard_dir=config["tensorboard_dir"],
        tensorboard_upload_url=config["tensorboard_upload_url"],
    )


if __name__ == "__main__":
    sys.exit(run_module(sys.modules[__name__]))
