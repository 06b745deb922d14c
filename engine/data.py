"""RunConfig -> this rank's training and validation loaders (pipeline.loader), built from the CURRENT world size."""

from __future__ import annotations

import torch

from pipeline.loader.build import build_eval_loader, build_train_loader


def build_loaders(cfg, rank: int, world_size: int):
    """(train loader, val loader or None) of `rank` of `world_size` for a configs.run.RunConfig."""
    if not cfg.data.train_url:
        raise ValueError("data.train_url is empty: pass --set data.train_url=<train shard set dir or s3:// prefix>")
    device_id = torch.cuda.current_device() if torch.cuda.is_available() else None
    train = build_train_loader(cfg.data.train_url, cfg.loader, rank=rank, world_size=world_size, device_id=device_id)
    val = None
    if cfg.data.val_url and cfg.train.validate:
        val = build_eval_loader(cfg.data.val_url, cfg.loader, rank=rank, world_size=world_size, device_id=device_id)
    return train, val
