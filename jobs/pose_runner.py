"""Distributed ego-motion prediction of one checkpoint: Ray tasks with rank/world_size, merged on the driver.

The F - 1 frame pairs of every sequence are split into `world_size` contiguous, disjoint ranges
(engine.pose_eval.split_pairs); task `rank` predicts range `rank` of every sequence (loading the checkpoint once).
The driver concatenates the ranges in order and checks that every pair was predicted exactly once
(engine.pose_eval.merge_motions). `num_workers=0` predicts everything in this process without Ray.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from jobs.errors import JobError


@dataclass(kw_only=True)
class PosePredictions:
    motions: dict[str, np.ndarray]
    """Sequence name -> (F - 1, 4, 4) motions, in sequence order."""
    identity: dict[str, Any]
    size_wh: tuple[int, int]
    num_tasks: int
    seconds: float


def worker_tasks(sequences, world_size: int) -> list[list]:
    """Per rank, the PairTasks of its pair range in every sequence (empty ranges left out)."""
    from engine.pose_eval import PairTask, split_pairs

    out: list[list] = [[] for _ in range(world_size)]
    for seq in sequences:
        for rank, (start, stop) in enumerate(split_pairs(seq.num_frames - 1, world_size)):
            if stop > start:
                out[rank].append(PairTask(sequence=seq.name, start=start, frame_urls=seq.frame_urls[start : stop + 1]))
    return out


def predict_sequences(*, checkpoint: str, sequences, num_workers: int = 1, batch_size: int = 8, device: str = "cpu",
                      cpus_per_worker: float = 1.0, ray_address: str | None = None) -> PosePredictions:
    from engine.pose_eval import merge_motions, predict_part
    from jobs.eval_runner import run_parts

    t0 = time.perf_counter()
    world = max(1, num_workers)
    tasks = worker_tasks(sequences, world)
    common: dict[str, Any] = dict(checkpoint=checkpoint, batch_size=batch_size, device=device,
                  num_threads=max(1, int(cpus_per_worker)) if num_workers else 0)
    kwargs_list = [dict(common, rank=r, tasks=t) for r, t in enumerate(tasks) if t]
    if not kwargs_list:
        raise JobError("no frame pairs to predict (every sequence needs at least 2 frames)")
    if num_workers == 0:
        results = [predict_part(**kw) for kw in kwargs_list]
    else:
        gpus = 1.0 if device.startswith("cuda") else 0.0
        results = run_parts(predict_part, kwargs_list, num_cpus=cpus_per_worker, num_gpus=gpus, address=ray_address)
    results = sorted(results, key=lambda r: r.rank)
    try:
        motions = merge_motions([p for r in results for p in r.parts], {s.name: s.num_frames - 1 for s in sequences})
    except ValueError as e:
        raise JobError(str(e)) from None
    return PosePredictions(motions=motions, identity={"url": checkpoint, **results[0].identity},
                           size_wh=results[0].size_wh, num_tasks=len(kwargs_list),
                           seconds=time.perf_counter() - t0)
