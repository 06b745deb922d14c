"""What every loader shares: which samples a rank reads, in which order, with which augmentation, how many batches
an epoch has and where a resumed epoch starts. The DALI and reference loaders differ only in how they decode.

A loader class = a decoder (DALI or reference, triplets or single frames) + one of the two orders below:
  TrainOrder  the shuffled, per-epoch training plan (partition.train_plan_for) with augmentation drawn per sample;
  EvalOrder   every sample exactly once across ranks, padded to whole batches (valid_B), no augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import numpy as np

from pipeline.loader import augment, partition
from pipeline.loader.config import LoaderConfig
from pipeline.loader.shardset import SampleEntry, ShardSet


class LoaderCore:
    kind = ""

    def __init__(self, shard_set: ShardSet, cfg: LoaderConfig, *, rank: int, world_size: int):
        self.shard_set = shard_set
        self.cfg = cfg
        self.rank = rank
        self.world_size = world_size

    def plan(self, epoch: int = 0) -> partition.RankPlan:
        raise NotImplementedError

    def params(self, epoch: int, ids_M: np.ndarray) -> augment.AugmentParams:
        raise NotImplementedError

    @cached_property
    def num_batches_per_epoch(self) -> int:
        """Equal on every rank and every epoch (DDP needs that)."""
        return self.plan(0).num_batches

    def epoch_plan(self, epoch: int, start_step: int) -> tuple[partition.RankPlan, augment.AugmentParams]:
        """The rest of `epoch` from batch `start_step` on (a resume), and the augmentation of those samples."""
        plan = self.plan(epoch).from_step(start_step)
        return plan, self.params(epoch, plan.sample_ids_M)

    def entries(self, plan: partition.RankPlan) -> list[SampleEntry]:
        return [self.shard_set.samples[i] for i in plan.sample_ids_M]

    def epoch_iterator(self, epoch: int = 0, start_step: int = 0) -> Iterator[Any]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Any]:
        return self.epoch_iterator(0)


class TrainOrder(LoaderCore):
    def __init__(self, shard_set: ShardSet, cfg: LoaderConfig, *, rank: int, world_size: int):
        super().__init__(shard_set, cfg, rank=rank, world_size=world_size)
        _ = self.num_batches_per_epoch  # a set too small for one batch per rank fails here, not mid-run

    def plan(self, epoch: int = 0) -> partition.RankPlan:
        return partition.train_plan_for(self.shard_set.samples, self.cfg, rank=self.rank, world_size=self.world_size,
                                        epoch=epoch)

    def params(self, epoch: int, ids_M: np.ndarray) -> augment.AugmentParams:
        return augment.sample_params(self.cfg.augment, seed=self.cfg.seed, epoch=epoch, sample_ids=ids_M)


class EvalOrder(LoaderCore):
    def plan(self, epoch: int = 0) -> partition.RankPlan:
        return partition.eval_plan(len(self.shard_set.samples), rank=self.rank, world_size=self.world_size,
                                   batch_size=self.cfg.batch_size)

    def params(self, epoch: int, ids_M: np.ndarray) -> augment.AugmentParams:
        return augment.identity_params(len(ids_M))
