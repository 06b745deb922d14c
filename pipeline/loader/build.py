"""Choose and build a loader from LoaderConfig: DALI where it is importable (or asked for), else the reference."""

from __future__ import annotations

import logging

import torch

from pipeline.loader.config import LoaderConfig
from pipeline.loader.shardset import open_shard_set

log = logging.getLogger(__name__)


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_kind(cfg: LoaderConfig) -> str:
    """Return "dali" or "reference"; logs the choice (a fallback from auto to reference is a warning)."""
    if cfg.loader == "reference":
        log.info("loader: reference (PIL + DataLoader), as configured")
        return "reference"
    if dali_available():
        log.info(
            "loader: DALI (%s)", "configured" if cfg.loader == "dali" else "auto: nvidia.dali is importable"
        )
        return "dali"
    if cfg.loader == "dali":
        raise ValueError(
            "LoaderConfig.loader='dali' but nvidia.dali cannot be imported (pip install nvidia-dali-cuda120)"
        )
    log.warning("loader: reference (PIL + DataLoader): auto found no importable nvidia.dali")
    return "reference"


def resolve_device_id(cfg: LoaderConfig, device_id: int | None) -> int | None:
    """GPU index for DALI's mixed decode, or None for the CPU graph."""
    if cfg.device == "cpu":
        return None
    if cfg.device == "gpu" and not torch.cuda.is_available():
        raise ValueError("LoaderConfig.device='gpu' but no CUDA device is available")
    if cfg.device == "gpu" or (cfg.device == "auto" and torch.cuda.is_available()):
        return torch.cuda.current_device() if device_id is None else device_id
    return None


def _build(url: str, cfg: LoaderConfig, *, set_kind: str, loader: str, rank: int, world_size: int,
           device_id: int | None):
    """`loader` of the DALI or the reference implementation over the complete shard set at `url`."""
    shard_set = open_shard_set(url, kind=set_kind, cache_dir=cfg.cache_dir, verify=cfg.verify)
    if resolve_kind(cfg) == "dali":
        from pipeline.loader import dali_loader

        return getattr(dali_loader, f"Dali{loader}")(shard_set, cfg, rank=rank, world_size=world_size,
                                                    device_id=resolve_device_id(cfg, device_id))
    from pipeline.loader import reference

    return getattr(reference, f"Reference{loader}")(shard_set, cfg, rank=rank, world_size=world_size)


def build_train_loader(url: str, cfg: LoaderConfig, *, rank: int = 0, world_size: int = 1,
                       device_id: int | None = None):
    """Training loader of one rank over the complete shard set at `url` (local dir or s3:// prefix)."""
    return _build(url, cfg, set_kind="train", loader="TrainLoader", rank=rank, world_size=world_size,
                  device_id=device_id)


def build_triplet_eval_loader(url: str, cfg: LoaderConfig, *, rank: int = 0, world_size: int = 1,
                              device_id: int | None = None):
    """Triplets of a training-kind shard set without augmentation, each sample once across ranks (valid_B): the
    pose validation reads the true camera motion (Batch.gt_T_BS44) of these."""
    return _build(url, cfg, set_kind="train", loader="TripletEvalLoader", rank=rank, world_size=world_size,
                  device_id=device_id)


def build_eval_loader(url: str, cfg: LoaderConfig, *, rank: int = 0, world_size: int = 1,
                      device_id: int | None = None):
    """Evaluation loader of one rank over the complete eval shard set at `url` (no augmentation)."""
    return _build(url, cfg, set_kind="eval", loader="EvalLoader", rank=rank, world_size=world_size,
                  device_id=device_id)
