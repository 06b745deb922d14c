"""RunConfig -> this rank's loaders (pipeline.loader), built from the CURRENT world size."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from pipeline.loader.build import build_eval_loader, build_train_loader, build_triplet_eval_loader


class Loaders(NamedTuple):
    train: Any
    """Training batches (augmented triplets)."""
    val: Any | None
    """Depth validation: EvalBatch of `data.val_url` (frames + ground-truth depth), or None."""
    pose_val: Any | None
    """Pose validation: un-augmented triplets of `data.pose_val_url` with their true camera motion, or None."""


def build_loaders(cfg, rank: int, world_size: int) -> Loaders:
    """The loaders of `rank` of `world_size` for a engine.run_config.RunConfig."""
    if not cfg.data.train_url:
        raise ValueError("data.train_url is empty: pass --set data.train_url=<train shard set dir or s3:// prefix>")
    device_id = torch.cuda.current_device() if torch.cuda.is_available() else None
    kw: dict[str, Any] = {"rank": rank, "world_size": world_size, "device_id": device_id}
    train = build_train_loader(cfg.data.train_url, cfg.loader, **kw)
    val = pose_val = None
    if cfg.train.validate:
        if cfg.data.val_url:
            val = build_eval_loader(cfg.data.val_url, cfg.loader, **kw)
        if cfg.data.pose_val_url:
            pose_val = build_triplet_eval_loader(cfg.data.pose_val_url, cfg.loader, **kw)
    return Loaders(train=train, val=val, pose_val=pose_val)
