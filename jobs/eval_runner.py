"""Distributed evaluation of one checkpoint: Ray tasks with rank/world_size, merged on the driver.

Each task runs `engine.evaluate.evaluate_part` on a disjoint part of the eval shard set; the driver concatenates the
per-image rows and the skipped (damaged) frames, checks that every frame of the set was counted exactly once,
either evaluated or skipped (no duplicate keys; evaluated + skipped == summary.json num_samples), that no more than
`max_bad_frames` were skipped in all, and averages per image. `num_workers=0` runs one part in this process without
Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs.errors import JobError


@dataclass(kw_only=True)
class EvalResult:
    metrics: dict[str, float]
    rows: list[dict[str, Any]]
    baseline: dict[str, float] | None
    baseline_rows: list[dict[str, Any]] | None
    samples: list[Any]
    identity: dict[str, Any]
    protocol: Any
    seconds: float
    eval_set: dict[str, Any] | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    """{"shard", "key", "reason"} of every damaged frame left out, in part order."""


def protocol_for_shard_set(protocol, summary):
    """Eval shards store GT cut like their frames (Cityscapes: the car hood rows removed at sharding), so a GT row
    cut requested on top of that (--gt-top-fraction < 1) would cut twice: refused with a clear error."""
    crop = summary.config.get("crop_bottom_frac", -1.0)
    already_cut = summary.dataset == "cityscapes" and (crop is None or crop != 0)
    if protocol.gt_top_fraction < 1.0 and already_cut:
        raise JobError(
            f"--gt-top-fraction {protocol.gt_top_fraction}: the {summary.dataset} eval shards already store GT cut "
            "to the frames' field of view; leave it at 1"
        )
    return protocol


def eval_set_info(data: str, summary) -> dict[str, Any]:
    """What the report records about the eval set: dataset, split, size, GT variant (source, vel_depth), version."""
    cfg = summary.config
    return {
        "url": data,
        "dataset": summary.dataset,
        "split": summary.split,
        "num_frames": summary.num_samples,
        "stored_size_wh": list(summary.stored_size_wh),
        "gt_source": cfg.get("gt_source") or summary.extra.get("gt_source", ""),
        "gt_depth": "velodyne x (monodepth2 vel_depth)" if cfg.get("vel_depth", True) else "camera z",
        "crop_bottom_frac": cfg.get("crop_bottom_frac"),
        "split_file": cfg.get("split_file", ""),
        "code_version": summary.code_version,
        "created_at": summary.created_at,
    }


def run_parts(fn, kwargs_list: list[dict[str, Any]], *, num_cpus: float, num_gpus: float, address: str | None):
    """Run fn(**kw) for every kw as Ray tasks (using the running Ray, else connecting/starting one)."""
    import ray

    from jobs.ray_cluster import ray_session, task_errors_in_one_line

    with ray_session(address=address), task_errors_in_one_line("a worker failed"):
        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=2)(fn)
        return ray.get([remote.remote(**kw) for kw in kwargs_list])


def merge_parts(parts, *, expected: int | None, data: str):
    """Concatenate part rows in rank order and check exactly-once coverage (a skipped frame counts as covered)."""
    parts = sorted(parts, key=lambda p: p.rank)
    rows = [r for p in parts for r in p.rows]
    skipped = [s for p in parts for s in p.skipped]
    keys = [r["key"] for r in rows] + [s["key"] for s in skipped]
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})[:5]
        raise JobError(f"{data}: frames evaluated more than once across workers: {dup}")
    if expected is not None and len(keys) != expected:
        also = f" and skipped {len(skipped)}" if skipped else ""
        raise JobError(f"{data}: evaluated {len(rows)} frames{also} but the shard set holds {expected}")
    return parts, rows


def check_bad_frame_budget(skipped: list[dict[str, str]], *, max_bad_frames: int, data: str) -> None:
    """Each part stops past the budget on its own; the parts together may still exceed it."""
    if len(skipped) > max_bad_frames:
        last = skipped[-1]
        raise JobError(f"{data}: {len(skipped)} damaged frames, more than max_bad_frames={max_bad_frames}; the last: "
                       f"{last['shard']}: sample {last['key']!r}: {last['reason']}")


def evaluate_checkpoint(
    *,
    checkpoint: str,
    data: str,
    protocol,
    num_workers: int = 1,
    batch_size: int = 8,
    device: str = "cpu",
    cpus_per_worker: float = 1.0,
    baseline: bool = False,
    grid_samples: int = 4,
    ray_address: str | None = None,
    max_bad_frames: int | None = None,
) -> EvalResult:
    import time

    from engine.evaluate import MAX_BAD_FRAMES, accumulate, evaluate_part
    from pipeline import storage
    from pipeline.loader.shardset import read_summary
    from pipeline.schema import SUMMARY_FILE

    if not storage.exists(storage.join(data, SUMMARY_FILE)):
        raise FileNotFoundError(f"{data}: no {SUMMARY_FILE} (not a complete shard set)")
    summary = read_summary(data)
    if summary.kind != "eval":
        raise JobError(f"{data}: a {summary.kind!r} shard set; evaluation needs one written with `rmdepth shard --eval`")
    protocol = protocol_for_shard_set(protocol, summary)
    t0 = time.perf_counter()
    world = max(1, num_workers)
    budget = MAX_BAD_FRAMES if max_bad_frames is None else max_bad_frames
    common = dict(checkpoint=checkpoint, data=data, protocol=protocol, world_size=world, batch_size=batch_size,
                  device=device, baseline=baseline, grid_samples=grid_samples,
                  num_threads=max(1, int(cpus_per_worker)) if num_workers else 0, max_bad_frames=budget)
    kwargs_list = [dict(common, rank=r) for r in range(world)]
    if num_workers == 0:
        parts = [evaluate_part(**kwargs_list[0])]
    else:
        gpus = 1.0 if device.startswith("cuda") else 0.0
        parts = run_parts(evaluate_part, kwargs_list, num_cpus=cpus_per_worker, num_gpus=gpus, address=ray_address)
    parts, rows = merge_parts(parts, expected=summary.num_samples, data=data)
    skipped = [s for p in parts for s in p.skipped]
    check_bad_frame_budget(skipped, max_bad_frames=budget, data=data)
    base_rows = [r for p in parts for r in p.baseline_rows] if baseline else None
    identity = {"url": checkpoint, **parts[0].identity}
    return EvalResult(
        metrics=accumulate(rows).means(),
        rows=rows,
        baseline=accumulate(base_rows).means() if base_rows else None,
        baseline_rows=base_rows,
        samples=[s for p in parts for s in p.samples][:grid_samples],
        identity=identity,
        protocol=protocol,
        seconds=time.perf_counter() - t0,
        eval_set=eval_set_info(data, summary),
        skipped=skipped,
    )
