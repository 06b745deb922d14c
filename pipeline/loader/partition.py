"""Which samples each rank reads, in which order (pure NumPy; both loaders use it).

Shape legend: N samples in the shard set, M samples in one rank's plan (= num_batches * batch_size).

Training: every epoch has its own order, a function of (seed, epoch) only: the samples of each shard are permuted,
cut into blocks of `block` samples, and the blocks of all shards are permuted together. Rank r takes the r-th
contiguous chunk of N // world_size samples, truncated to whole batches, so every rank has the same number of batches
(DDP needs that) and ranks are disjoint; at most world_size * batch_size - 1 samples per epoch are left out, a
different subset each epoch. Resuming at (epoch, step) = the same plan without its first step * batch_size entries.

Evaluation: no shuffle; rank r takes the r-th contiguous chunk of ceil(N / world_size) samples, padded (by repeating
a sample, marked invalid) to the common number of whole batches: every sample is valid exactly once across ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class RankPlan:
    """sample_ids_M: global sample ids in read order; valid_M: False for padding; num_batches * batch_size = M."""

    sample_ids_M: np.ndarray
    valid_M: np.ndarray
    num_batches: int
    batch_size: int

    def from_step(self, start_step: int) -> RankPlan:
        """The plan without its first `start_step` batches."""
        if not 0 <= start_step <= self.num_batches:
            raise ValueError(
                f"start_step={start_step}: must be in [0, {self.num_batches}] (batches per epoch)"
            )
        k = start_step * self.batch_size
        return RankPlan(
            sample_ids_M=self.sample_ids_M[k:],
            valid_M=self.valid_M[k:],
            num_batches=self.num_batches - start_step,
            batch_size=self.batch_size,
        )


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size")


def train_order(shard_of_N: np.ndarray, *, seed: int, epoch: int, shuffle: bool, block: int) -> np.ndarray:
    """Global sample ids in this epoch's read order (a permutation of 0..N-1)."""
    n = len(shard_of_N)
    if not shuffle:
        return np.arange(n)
    rng = np.random.default_rng([seed & 0xFFFFFFFF, epoch, 0x5EED])
    blocks: list[np.ndarray] = []
    for s in np.unique(shard_of_N):
        ids = rng.permutation(np.flatnonzero(shard_of_N == s))
        blocks.extend(ids[i : i + block] for i in range(0, len(ids), block))
    return np.concatenate([blocks[i] for i in rng.permutation(len(blocks))])


def train_plan(
    shard_of_N: np.ndarray,
    *,
    rank: int,
    world_size: int,
    batch_size: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    block: int = 4,
) -> RankPlan:
    _check_rank(rank, world_size)
    n = len(shard_of_N)
    per_rank = n // world_size
    num_batches = per_rank // batch_size
    if num_batches == 0:
        raise ValueError(
            f"{n} training samples are too few for world_size={world_size} x batch_size={batch_size} (0 batches)"
        )
    order = train_order(shard_of_N, seed=seed, epoch=epoch, shuffle=shuffle, block=block)
    ids = order[rank * per_rank : rank * per_rank + num_batches * batch_size]
    return RankPlan(
        sample_ids_M=ids, valid_M=np.ones(len(ids), bool), num_batches=num_batches, batch_size=batch_size
    )


def eval_plan(num_samples: int, *, rank: int, world_size: int, batch_size: int) -> RankPlan:
    _check_rank(rank, world_size)
    per_rank = -(-num_samples // world_size)
    num_batches = -(-per_rank // batch_size)
    real = np.arange(rank * per_rank, min((rank + 1) * per_rank, num_samples))
    pad = num_batches * batch_size - len(real)
    filler = real[-1] if len(real) else 0
    ids = np.concatenate([real, np.full(pad, filler, dtype=real.dtype)])
    valid = np.concatenate([np.ones(len(real), bool), np.zeros(pad, bool)])
    return RankPlan(sample_ids_M=ids, valid_M=valid, num_batches=num_batches, batch_size=batch_size)


def segments(shard_of_M: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs of consecutive entries from one shard: (shard, start, stop) over positions of the plan."""
    out = []
    start = 0
    for i in range(1, len(shard_of_M) + 1):
        if i == len(shard_of_M) or shard_of_M[i] != shard_of_M[start]:
            out.append((int(shard_of_M[start]), start, i))
            start = i
    return out


def train_plan_for(samples, cfg, *, rank: int, world_size: int, epoch: int) -> RankPlan:
    """`train_plan` for a shard set's samples (objects with a `.shard` index) under a LoaderConfig; both loaders
    use this, so they read the same samples in the same order."""
    shard_of_N = np.array([s.shard for s in samples], dtype=np.int64)
    return train_plan(
        shard_of_N,
        rank=rank,
        world_size=world_size,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        epoch=epoch,
        shuffle=cfg.shuffle,
        block=cfg.shuffle_block,
    )
