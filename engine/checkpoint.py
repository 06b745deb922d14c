"""Complete, strict, safe checkpoints.

Layout of one checkpoint directory (local dir or object-storage prefix, e.g. `<storage>/<run>/checkpoint_e002_s00001200`):
  model.pt         {"format", "depth_net": state_dict, "motion_net": state_dict, "config_json": str, "identity_json": str}
  train_state.pt   {"format", "optimizer": state_dict, "scheduler": dict, "position": dict, "rng": [per-rank dict]}
  config.json      the resolved RunConfig (engine.config_io.to_json), same text as model.pt["config_json"]
  identity.json    run name, step, epoch, samples_seen, world size, metrics, seed, code version, parent checkpoint
Only tensors and primitive containers are stored, and every load uses `torch.load(weights_only=True)`.
Loads are strict: a missing/unexpected key or a shape mismatch is a ValueError naming the file.
A checkpoint becomes visible only after Ray (or LocalRuntime) has copied the finished directory, so a half-written
one is never listed.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline import storage

FORMAT = "rmdepth-checkpoint/2"  # 2: time-ordered pose net with normalisation, full-resolution skip (issue 12)
MODEL_FILE = "model.pt"
STATE_FILE = "train_state.pt"
CONFIG_FILE = "config.json"
IDENTITY_FILE = "identity.json"
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
    return f"checkpoint_e{position.epoch:03d}_s{position.step:09d}"


# -- RNG ------------------------------------------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as tensors and primitives (weights_only-safe)."""
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy_kind": str(np_kind),
        "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_pos": int(np_pos),
        "numpy_has_gauss": int(np_has_gauss),
        "numpy_cached": float(np_cached),
        "python_version": int(py_version),
        "python_state": torch.tensor(py_state, dtype=torch.int64),
        "python_gauss": py_gauss if py_gauss is None else float(py_gauss),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(
        (
            state["numpy_kind"],
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_cached"],
        )
    )
    random.setstate((state["python_version"], tuple(int(v) for v in state["python_state"].tolist()), state["python_gauss"]))
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def _fetch(url: str, names: tuple[str, ...], into: str) -> None:
    for name in names:
        src = storage.join(url, name)
        if not storage.exists(src):
            raise FileNotFoundError(f"checkpoint {url}: {name} is missing (not a complete checkpoint?)")
        storage.get_file(src, os.path.join(into, name))


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
        if storage.is_remote(url):
            _fetch(url, (MODEL_FILE,), tmp)
            directory = tmp
        else:
            directory = storage.strip_file_scheme(url)
        identity = load_weights(directory, nets)
    return nets.to(device), cfg, identity


def load_inference_model(url: str, *, device: torch.device | str = "cpu"):
    """(depth_net in eval mode, RunConfig, identity dict) from a checkpoint directory or URL.

    Example: `net, cfg, ident = load_inference_model("s3://bucket/runs/kitti/checkpoint_e019_s000066340")`.
    """
    nets, cfg, identity = load_nets(url, device=device)
    depth_net = _net(nets, "depth_net")
    depth_net.eval()
    return depth_net, cfg, identity
