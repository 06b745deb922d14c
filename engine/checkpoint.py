"""Complete, strict, safe checkpoints.

Layout of one checkpoint directory (local dir or object-storage prefix, e.g. `<storage>/<run>/checkpoint_e002_s00001200`):
  model.pt         {"format", "depth_net": state_dict, "motion_net": state_dict, "config_json": str, "identity_json": str}
  train_state.pt   {"format", "optimizer": state_dict, "scheduler": dict, "position": dict, "rng": [per-rank dict]}
  config.json      the resolved RunConfig (engine.config_io.to_json), same text as model.pt["config_json"]
  identity.json    run name, step, epoch, samples_seen, world size, metrics, seed, code version, parent checkpoint
  history.json     {"train": training log rows, "val": validation rows} of the run up to this checkpoint
A run directory holds `checkpoint_e<epoch>_s<step>/` checkpoints (Ray Train's, or LocalCheckpointStore's with a
`checkpoints.json` index); `checkpoints_to_delete` is the retention policy of both (top-k by score + the latest).
This module alone knows these names; `TrainState` is what a training loop saves and resumes.
Only tensors and primitive containers are stored, and every load uses `torch.load(weights_only=True)`.
Loads are strict: a missing/unexpected key or a shape mismatch is a ValueError naming the file.
A checkpoint becomes visible only after Ray (or LocalRuntime) has copied the finished directory, so a half-written
one is never listed.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from engine.optim import LRSchedule, build_optimizer
from engine.rng import restore_rng_state, seed_everything
from pipeline import storage

if TYPE_CHECKING:
    from engine.runtime import Runtime

FORMAT = "rmdepth-checkpoint/2"  # 2: time-ordered pose net with normalisation, full-resolution skip (issue 12)
MODEL_FILE = "model.pt"
STATE_FILE = "train_state.pt"
CONFIG_FILE = "config.json"
IDENTITY_FILE = "identity.json"
HISTORY_FILE = "history.json"
REQUIRED_FILES = (MODEL_FILE, IDENTITY_FILE, CONFIG_FILE)
CHECKPOINT_PREFIX = "checkpoint_"
LOCAL_INDEX_FILE = "checkpoints.json"
NET_NAMES = ("depth_net", "motion_net")
_NET_ATTRS = {"depth_net": "depth", "motion_net": "motion"}  # checkpoint key -> attribute of model.RMDepthNets


@dataclass(frozen=True, kw_only=True)
class TrainPosition:
    """Where training stands after the last completed optimizer step."""

    step: int = 0
    """Optimizer steps done (global; identical on every rank)."""
    epoch: int = 0
    """Epoch of the next batch."""
    step_in_epoch: int = 0
    """Batches of `epoch` already consumed (the loader resumes here)."""
    samples_seen: int = 0
    """Training samples consumed, summed over all ranks."""
    epoch_samples: int = 0
    """Samples of `epoch` already consumed, summed over all ranks (used to remap the position after a resize)."""
    world_size: int = 1
    """World size that produced this position."""


def checkpoint_name(position: TrainPosition) -> str:
    return f"{CHECKPOINT_PREFIX}e{position.epoch:03d}_s{position.step:09d}"


def is_checkpoint_name(name: str) -> bool:
    return name.startswith(CHECKPOINT_PREFIX)


def missing_files(url: str) -> list[str]:
    """The files a complete checkpoint has that `url` lacks (empty: complete)."""
    names = set(storage.listdir(url))
    return [f for f in REQUIRED_FILES if f not in names]


def read_history(url: str, *, missing_ok: bool = True) -> dict[str, list[Any]]:
    """history.json of a checkpoint: {"train": rows, "val": rows, "bad_samples": names} (empty lists when it has
    none and `missing_ok`, else FileNotFoundError, e.g. for a checkpoint still being uploaded)."""
    src = storage.join(url, HISTORY_FILE)
    if not storage.exists(src):
        if not missing_ok:
            raise FileNotFoundError(f"checkpoint {url}: {HISTORY_FILE} is missing")
        return {"train": [], "val": []}
    return json.loads(storage.read_text(src))


# -- save -----------------------------------------------------------------------------------------------------------
def _net(nets: nn.Module, name: str) -> nn.Module:
    nets = getattr(nets, "module", nets)  # unwrap DDP
    sub = getattr(nets, _NET_ATTRS[name], None)
    if not isinstance(sub, nn.Module):
        raise TypeError(f"checkpoint: the model has no sub-network {_NET_ATTRS[name]!r} ({name})")
    return sub


def save_checkpoint(
    directory: str,
    *,
    nets: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler_state: dict[str, Any],
    position: TrainPosition,
    rng_states: list[dict[str, Any]],
    config_json: str,
    identity: dict[str, Any],
    history: dict[str, list[Any]] | None = None,
) -> None:
    """Write a complete checkpoint into the local directory `directory` (created if needed)."""
    os.makedirs(directory, exist_ok=True)
    identity = {**identity, "format": FORMAT, "created_at": _dt.datetime.now(_dt.UTC).isoformat(), **asdict(position)}
    identity_json = json.dumps(identity, indent=2, sort_keys=True, default=float)
    model = {
        "format": FORMAT,
        **{name: _net(nets, name).state_dict() for name in NET_NAMES},
        "config_json": config_json,
        "identity_json": identity_json,
    }
    state = {
        "format": FORMAT,
        "optimizer": optimizer.state_dict(),
        "scheduler": dict(scheduler_state),
        "position": asdict(position),
        "rng": list(rng_states),
    }
    torch.save(model, os.path.join(directory, MODEL_FILE))
    torch.save(state, os.path.join(directory, STATE_FILE))
    with open(os.path.join(directory, CONFIG_FILE), "w") as f:
        f.write(config_json)
    with open(os.path.join(directory, IDENTITY_FILE), "w") as f:
        f.write(identity_json)
    with open(os.path.join(directory, HISTORY_FILE), "w") as f:
        json.dump(history or {"train": [], "val": []}, f, default=float)


# -- load -----------------------------------------------------------------------------------------------------------
def _torch_load(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint file {path} is missing (incomplete checkpoint?)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"checkpoint file {path} cannot be loaded safely: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"checkpoint file {path}: format {found!r}, expected {FORMAT!r}")
    return data


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"{where}: state does not match the network: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise ValueError(f"{where}: shape mismatch for {bad[:5]} (checkpoint vs network)")
    module.load_state_dict(state, strict=True)


def load_weights(directory: str, nets: nn.Module) -> dict[str, Any]:
    """Load both networks strictly from a local checkpoint dir; returns its identity dict."""
    path = os.path.join(directory, MODEL_FILE)
    model = _torch_load(path)
    for name in NET_NAMES:
        if name not in model:
            raise ValueError(f"{path}: no {name!r} in the checkpoint")
        _load_strict(_net(nets, name), model[name], f"{path} [{name}]")
    return json.loads(model["identity_json"])


def load_training_state(
    directory: str,
    *,
    nets: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[TrainPosition, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Load nets + optimizer strictly; return (position, scheduler state, per-rank RNG states, identity)."""
    identity = load_weights(directory, nets)
    path = os.path.join(directory, STATE_FILE)
    state = _torch_load(path)
    for key in ("optimizer", "scheduler", "position", "rng"):
        if key not in state:
            raise ValueError(f"{path}: no {key!r} in the training state")
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as e:
        raise ValueError(f"{path}: optimizer state does not match: {e}") from e
    try:
        position = TrainPosition(**state["position"])
    except TypeError as e:
        raise ValueError(f"{path}: bad position record {state['position']}: {e}") from e
    return position, state["scheduler"], state["rng"], identity


def _local_copy(url: str, names: tuple[str, ...], into: str) -> str:
    """A local directory holding `names` of the checkpoint at `url` (the checkpoint itself when it is local)."""
    if not storage.is_remote(url):
        return storage.strip_file_scheme(url)
    for name in names:
        src = storage.join(url, name)
        if not storage.exists(src):
            raise FileNotFoundError(f"checkpoint {url}: {name} is missing (not a complete checkpoint?)")
        storage.get_file(src, os.path.join(into, name))
    return into


def read_identity(url: str) -> dict[str, Any]:
    """identity.json of a checkpoint (local dir or URL)."""
    src = storage.join(url, IDENTITY_FILE)
    if not storage.exists(src):
        raise FileNotFoundError(f"checkpoint {url}: {IDENTITY_FILE} is missing (not a complete checkpoint?)")
    return json.loads(storage.read_text(src))


def read_run_config(url: str):
    """The resolved RunConfig stored in a checkpoint (local dir or URL)."""
    from engine.config_io import from_json
    from engine.run_config import RunConfig

    src = storage.join(url, CONFIG_FILE)
    if not storage.exists(src):
        raise FileNotFoundError(f"checkpoint {url}: {CONFIG_FILE} is missing (not a complete checkpoint?)")
    try:
        return from_json(RunConfig, storage.read_text(src))
    except ValueError as e:
        raise ValueError(f"checkpoint {url}: {CONFIG_FILE} does not match this code's RunConfig: {e}") from e


def load_nets(url: str, *, device: torch.device | str = "cpu"):
    """(RMDepthNets with weights loaded strictly, RunConfig, identity) from a checkpoint dir or URL."""
    from model.nets import build_nets

    cfg = read_run_config(url)
    nets = build_nets(cfg.depth, cfg.motion)
    with tempfile.TemporaryDirectory(prefix="rmdepth-load-") as tmp:
        identity = load_weights(_local_copy(url, (MODEL_FILE,), tmp), nets)
    return nets.to(device), cfg, identity


def load_inference_model(url: str, *, device: torch.device | str = "cpu"):
    """(depth_net in its inference form, RunConfig, identity dict) from a checkpoint directory or URL: eval mode,
    BatchNorm folded into the convolutions, channels-last weights (model.inference.for_inference).

    Example: `net, cfg, ident = load_inference_model("s3://bucket/runs/kitti/checkpoint_e019_s000066340")`.
    """
    from model.inference import for_inference

    nets, cfg, identity = load_nets(url, device=device)
    return for_inference(_net(nets, "depth_net")), cfg, identity


# -- which checkpoints a run keeps, and a run directory without Ray ------------------------------------------------
def checkpoints_to_delete(entries: list[dict[str, Any]], *, keep_top_k: int, score_metric: str) -> list[str]:
    """Retention policy: keep the `keep_top_k` entries with the lowest score, plus the latest; return the others.

    `entries` are in reporting order, each {"name": str, "metrics": dict}. A missing or NaN score counts as +inf.
    Ties keep the later checkpoint (same as Ray's checkpoint manager).
    """

    def score(i_e: tuple[int, dict[str, Any]]) -> tuple[float, int]:
        v = i_e[1]["metrics"].get(score_metric, math.inf)
        v = math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return (v, -i_e[0])

    ranked = sorted(enumerate(entries), key=score)
    keep = {i for i, _ in ranked[:keep_top_k]}
    if entries:
        keep.add(len(entries) - 1)
    return [e["name"] for i, e in enumerate(entries) if i not in keep]


class LocalCheckpointStore:
    """A run directory (local path or URL) of checkpoints with a `checkpoints.json` index, kept by the same policy
    as a Ray run: what engine.runtime.LocalRuntime reports to."""

    def __init__(self, run_url: str, *, keep_top_k: int, score_metric: str):
        self.run_url, self.keep_top_k, self.score_metric = run_url, keep_top_k, score_metric
        storage.makedirs(run_url)

    def _index(self) -> list[dict[str, Any]]:
        url = storage.join(self.run_url, LOCAL_INDEX_FILE)
        return json.loads(storage.read_text(url)) if storage.exists(url) else []

    def commit(self, directory: str, name: str, metrics: dict[str, Any]) -> None:
        """Copy a finished checkpoint directory in, index it, then delete what the policy drops."""
        target = storage.join(self.run_url, name)
        for root, _, files in os.walk(directory):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), directory)
                storage.put_file(os.path.join(root, f), storage.join(target, rel))
        index = [e for e in self._index() if e["name"] != name] + [{"name": name, "metrics": dict(metrics)}]
        doomed = checkpoints_to_delete(index, keep_top_k=self.keep_top_k, score_metric=self.score_metric)
        index = [e for e in index if e["name"] not in doomed]
        storage.write_text(storage.join(self.run_url, LOCAL_INDEX_FILE), json.dumps(index, indent=2))  # index first
        for doomed_name in doomed:
            storage.remove(storage.join(self.run_url, doomed_name), recursive=True)

    def urls(self) -> list[str]:
        """URLs of the kept checkpoints, in reporting order."""
        return [url for url, _ in self.entries()]

    def entries(self) -> list[tuple[str, dict[str, Any]]]:
        """(URL, reported metrics) of the kept checkpoints, in reporting order."""
        return [(storage.join(self.run_url, e["name"]), e["metrics"]) for e in self._index()]

    def best_url(self) -> str | None:
        index = self._index()
        if not index:
            return None
        best = min(reversed(index), key=lambda e: e["metrics"].get(self.score_metric, math.inf))
        return storage.join(self.run_url, best["name"])

    @contextmanager
    def latest(self) -> Iterator[str | None]:
        """A local copy of the latest checkpoint (None when there is none), removed afterwards."""
        urls = self.urls()
        if not urls:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="rmdepth-ckpt-") as tmp:
            for rel in storage.find(urls[-1]):
                storage.get_file(storage.join(urls[-1], rel), os.path.join(tmp, rel))
            yield tmp


# -- what a training loop saves and resumes ---------------------------------------------------------------------
@dataclass(kw_only=True)
class TrainState:
    """Everything a run carries from step to step: the nets, the optimizer, the learning-rate schedule, where it
    stands (position), its logs (history), the checkpoint it started from (parent) and where it resumed (if it
    did). `resume_or_init` builds it, `save` writes it."""

    nets: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    position: TrainPosition
    history: list[dict[str, Any]] = field(default_factory=list)
    val_history: list[dict[str, Any]] = field(default_factory=list)
    bad_samples: list[str] = field(default_factory=list)
    """Training samples found damaged so far (a line naming the tar, the key and what is wrong, each once), over every rank."""
    parent: str = ""
    resumed_from: int | None = None

    @classmethod
    def resume_or_init(cls, cfg: Any, runtime: Runtime) -> TrainState:
        """Fresh nets (identical on every rank), then the latest checkpoint of this run if the runtime has one
        (exact: nets, optimizer, schedule, position, history, this rank's RNG), else `cfg.init_checkpoint`'s
        weights (e.g. Cityscapes pretraining) if set. After an elastic resize the RNGs are re-seeded from
        (seed, rank, step); the position is remapped by `remap_position` once the epoch length is known."""
        from model.nets import build_nets

        tcfg, world = cfg.train, runtime.world_size
        seed_everything(tcfg.seed)
        nets = build_nets(cfg.depth, cfg.motion)
        if world > 1 and tcfg.sync_batchnorm and runtime.device.type == "cuda":
            nets = nn.SyncBatchNorm.convert_sync_batchnorm(nets)
        nets.to(runtime.device)
        if tcfg.channels_last:
            nets.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # runtime API, not in stubs
        optimizer = build_optimizer(nets, cfg.optim)
        state = cls(nets=nets, optimizer=optimizer, schedule=LRSchedule(optimizer, cfg.optim, world_size=world),
                    position=TrainPosition(world_size=world))
        with runtime.latest_checkpoint() as directory:
            if directory:
                state._resume(directory, seed=tcfg.seed, rank=runtime.rank, world_size=world)
                return state
        seed_everything(tcfg.seed + 1000 * runtime.rank)
        if cfg.init_checkpoint:
            with tempfile.TemporaryDirectory(prefix="rmdepth-init-") as tmp:
                load_weights(_local_copy(cfg.init_checkpoint, (MODEL_FILE,), tmp), nets)
            state.parent = cfg.init_checkpoint
        return state

    def _resume(self, directory: str, *, seed: int, rank: int, world_size: int) -> None:
        position, sched_state, rng_states, identity = load_training_state(directory, nets=self.nets,
                                                                          optimizer=self.optimizer)
        self.schedule.load_state_dict(sched_state)
        self.position, self.resumed_from = position, position.step
        self.parent = identity.get("parent_checkpoint", "")
        saved = read_history(directory)
        self.history, self.val_history = saved["train"], saved["val"]
        self.bad_samples = list(saved.get("bad_samples", []))
        if position.world_size == world_size and len(rng_states) == world_size:
            restore_rng_state(rng_states[rank])
        else:
            seed_everything(seed + 1000 * rank + 7919 * position.step)

    def remap_position(self, *, world_size: int, global_batch: int, steps_per_epoch: int) -> None:
        """After an elastic resize: the new rank-local start batch is ceil(samples already consumed in this epoch /
        new global batch) (no sample of the epoch twice; at most one global batch of it skipped)."""
        p = self.position
        if p.world_size == world_size:
            return
        start = math.ceil(p.epoch_samples / global_batch) if p.epoch_samples else 0
        if start >= steps_per_epoch:
            self.position = replace(p, epoch=p.epoch + 1, step_in_epoch=0, epoch_samples=0, world_size=world_size)
        else:
            self.position = replace(p, step_in_epoch=start, epoch_samples=start * global_batch, world_size=world_size)

    def start_epoch(self, epoch: int, *, global_batch: int) -> int:
        """Enter `epoch` (or continue it after a resume); returns the batch to start from."""
        start = self.position.step_in_epoch if epoch == self.position.epoch else 0
        self.position = replace(self.position, epoch=epoch, step_in_epoch=start, epoch_samples=start * global_batch)
        return start

    def stepped(self, *, global_batch: int) -> None:
        """Count one optimizer step of `global_batch` samples."""
        p = self.position
        self.position = replace(p, step=p.step + 1, step_in_epoch=p.step_in_epoch + 1,
                                samples_seen=p.samples_seen + global_batch, epoch_samples=p.epoch_samples + global_batch)

    def end_epoch(self) -> None:
        self.position = replace(self.position, epoch=self.position.epoch + 1, step_in_epoch=0, epoch_samples=0)

    def save(self, directory: str, *, rng_states: list[dict[str, Any]], config_json: str,
             identity: dict[str, Any]) -> None:
        """Write this state as a complete checkpoint into the local directory `directory`."""
        save_checkpoint(directory, nets=self.nets, optimizer=self.optimizer, scheduler_state=self.schedule.state_dict(),
                        position=self.position, rng_states=rng_states, config_json=config_json,
                        identity={**identity, "parent_checkpoint": self.parent},
                        history={"train": self.history, "val": self.val_history, "bad_samples": self.bad_samples})
