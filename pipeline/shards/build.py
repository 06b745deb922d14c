"""Driver side of `rmdepth shard`: list the inputs, plan the shards, run the shard tasks, write the set's tables.

Exactly once + resumable: every record is assigned to exactly one shard by a seeded permutation computed from the
sorted source listing (deterministic, so a rerun makes the same plan), a shard task is idempotent (see `task.py`),
and `summary.json` is written last, after manifest.parquet and errors.parquet, which marks the set complete.
Eval sets keep the split-file order (no shuffle), so sample i of the set is line i of the split (minus skips).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict

import numpy as np

from pipeline import faults, storage
from pipeline.schema import ERRORS_FILE, MANIFEST_FILE, SUMMARY_FILE, ShardInfo, ShardSetSummary
from pipeline.shards.config import ShardConfig
from pipeline.shards.tables import ERRORS_SCHEMA, MANIFEST_SCHEMA, write_parquet
from pipeline.shards.task import PARTS_DIR, ShardOutcome, ShardTask
from pipeline.sources import SOURCES
from pipeline.sources.records import Listing
from pipeline.version import code_version

PLAN_FILE = "plan.json"


class ShardSetError(ValueError):
    """A user-facing failure of the shard job (bad input, config clash, strict mode)."""


def config_dict(cfg: ShardConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def shard_name(cfg: ShardConfig, i: int) -> str:
    return f"{cfg.dataset}-{cfg.split}-{i:06d}.tar"


@dataclasses.dataclass(kw_only=True)
class Plan:
    listing: Listing
    tasks: list[ShardTask]


def plan(cfg: ShardConfig) -> Plan:
    """List the inputs (fails fast on a SRC that is not the dataset) and assign every record to one shard."""
    source = SOURCES[cfg.dataset]
    source.check_root(cfg)
    listing = source.list_triplets(cfg) if cfg.kind == "train" else source.list_eval_frames(cfg)
    records, seen = [], set()
    for r in listing.records:
        if r.key in seen:
            listing.count("duplicate_targets")
            continue
        seen.add(r.key)
        records.append(r)
    if cfg.kind == "train":
        records.sort(key=lambda r: r.key)
        order = np.random.default_rng(cfg.seed).permutation(len(records))
        records = [records[i] for i in order]
    if not records:
        first = f"; first: {listing.skipped[0].file}: {listing.skipped[0].reason}" if listing.skipped else ""
        raise ShardSetError(f"{cfg.input}: no valid {'triplets' if cfg.kind == 'train' else 'eval frames'} found "
                            f"({len(listing.skipped)} inputs skipped{first})")
    cfg_text = json.dumps(config_dict(cfg), sort_keys=True)
    tasks = []
    n = cfg.samples_per_shard
    for i in range(0, len(records), n):
        chunk = tuple(records[i : i + n])
        digest = hashlib.sha256("\n".join([cfg_text, *(r.key for r in chunk)]).encode()).hexdigest()
        tasks.append(ShardTask(dst="", name=shard_name(cfg, i // n), kind=cfg.kind, records=chunk,
                               stored_wh=cfg.size_wh, jpeg_quality=cfg.jpeg_quality, plan_digest=digest))
    listing.records = records
    return Plan(listing=listing, tasks=tasks)


def _config_diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} there vs {b.get(k)!r} now" for k in keys[:4])


def remove_set(dst: str) -> None:
    """Delete every file of a shard set at DST (tars, indexes, tables, parts)."""
    for url in storage.glob(dst, "*-*-[0-9]*.tar") + storage.glob(dst, "*-*-[0-9]*.idx"):
        storage.remove(url)
    for name in (SUMMARY_FILE, MANIFEST_FILE, ERRORS_FILE):
        storage.remove(storage.join(dst, name))
    storage.remove(storage.join(dst, PARTS_DIR), recursive=True)


def prepare_destination(cfg: ShardConfig, dst: str, *, overwrite: bool) -> ShardSetSummary | None:
    """The existing summary if DST already holds this exact set; clears or refuses a different one."""
    want = config_dict(cfg)
    summary_url = storage.join(dst, SUMMARY_FILE)
    plan_url = storage.join(dst, PARTS_DIR, PLAN_FILE)
    if storage.exists(summary_url):
        existing = ShardSetSummary.from_json(storage.read_text(summary_url))
        if existing.config == want and not overwrite:
            return existing
        if not overwrite:
            raise ShardSetError(f"{dst} already holds a complete shard set made with a different config "
                                f"({_config_diff(existing.config, want)}); pass --overwrite or choose another --output")
        remove_set(dst)
    elif storage.exists(plan_url):
        previous = json.loads(storage.read_text(plan_url))
        if previous != want:
            if not overwrite:
                raise ShardSetError(f"{dst} holds an unfinished shard set started with a different config "
                                    f"({_config_diff(previous, want)}); pass --overwrite or choose another --output")
            remove_set(dst)
    elif overwrite:
        remove_set(dst)
    return None


def build_shard_set(cfg: ShardConfig, dst: str, *, run_tasks: Callable[[list[ShardTask]], Iterable[ShardOutcome]],
                    strict: bool = False, overwrite: bool = False, log: Callable[[str], None] = print) -> ShardSetSummary:
    """Plan, run the shard tasks through `run_tasks` (serial or Ray), then write manifest, errors and summary."""
    existing = prepare_destination(cfg, dst, overwrite=overwrite)
    if existing is not None:
        log(f"{dst}: complete shard set already present ({existing.num_samples} samples, "
            f"{len(existing.shards)} shards); nothing to do")
        return existing
    p = plan(cfg)
    if strict and p.listing.skipped:
        s = p.listing.skipped[0]
        raise ShardSetError(f"--strict: {len(p.listing.skipped)} input(s) skipped; first: {s.file}: {s.reason}")
    storage.makedirs(dst)
    storage.write_text(storage.join(dst, PARTS_DIR, PLAN_FILE), json.dumps(config_dict(cfg), sort_keys=True))
    tasks = [dataclasses.replace(t, dst=dst) for t in p.tasks]
    log(f"{cfg.dataset}/{cfg.split}: {len(p.listing.records)} samples in {len(tasks)} shards "
        f"({len(p.listing.skipped)} inputs skipped while listing)")
    outcomes = {o.name: o for o in _check_all(run_tasks(tasks), tasks)}
    ordered = [outcomes[t.name] for t in tasks]
    skipped = [asdict(s) for s in p.listing.skipped] + [s for o in ordered for s in o.skipped]
    if strict and skipped:
        raise ShardSetError(f"--strict: {len(skipped)} input(s) skipped; first: {skipped[0]['file']}: "
                            f"{skipped[0]['reason']} (the set is left incomplete)")
    faults.inject("before_summary")
    rows = [r for o in ordered for r in o.rows]
    accounting = _accounting(p, ordered, written=len(rows), dst=dst)
    write_parquet(storage.join(dst, MANIFEST_FILE), rows, MANIFEST_SCHEMA)
    write_parquet(storage.join(dst, ERRORS_FILE), skipped, ERRORS_SCHEMA)
    stages: dict[str, int] = {}
    for s in skipped:
        stages[s["stage"]] = stages.get(s["stage"], 0) + 1
    summary = ShardSetSummary(
        dataset=cfg.dataset, split=cfg.split, kind=cfg.kind, num_samples=len(rows), stored_size_wh=cfg.size_wh,
        shards=tuple(ShardInfo(name=o.name, index_name=o.index_name, num_samples=o.num_samples, sha256=o.sha256,
                               num_bytes=o.num_bytes) for o in ordered if o.num_samples),
        num_errors=len(skipped), config=config_dict(cfg), code_version=code_version(),
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        extra={"filtered": p.listing.filtered, "errors_by_stage": stages, "accounting": accounting,
               "num_planned": len(p.listing.records), "num_reused_shards": sum(o.reused for o in ordered),
               **({"num_with_camera_motion": sum(r.get("T_target_to_frames") is not None for r in rows)}
                  if cfg.kind == "train" else {}),
               **({"gt_source": cfg.gt_source, "vel_depth": cfg.vel_depth if cfg.gt_source == "velodyne" else None}
                  if cfg.kind == "eval" else {})},
    )
    storage.write_text(storage.join(dst, SUMMARY_FILE), summary.to_json())
    storage.remove(storage.join(dst, PARTS_DIR), recursive=True)
    return summary


def _accounting(p: Plan, outcomes: list[ShardOutcome], *, written: int, dst: str) -> dict[str, int]:
    """What became of the inputs, stage by stage: the listing turns what it finds into planned samples, recorded
    skips (an input: a file, a drive's camera, a split line) and counted filters; every planned sample is then
    written or skipped with a record: planned = written + skipped while encoding, exactly. A difference means a
    sample was lost without a trace: the set is not written."""
    encode_skipped = sum(len(o.skipped) for o in outcomes)
    planned = len(p.listing.records)
    if written + encode_skipped != planned:
        raise ShardSetError(f"{dst}: {planned} samples planned, but {written} written and {encode_skipped} skipped "
                            "while encoding: inputs unaccounted for (the set is left incomplete)")
    listing_skipped, filtered = len(p.listing.skipped), sum(p.listing.filtered.values())
    return {"inputs_skipped_while_listing": listing_skipped, "filtered": filtered, "planned": planned,
            "skipped_while_encoding": encode_skipped, "written": written}


def _check_all(outcomes: Iterable[ShardOutcome], tasks: list[ShardTask]) -> Iterator[ShardOutcome]:
    names = {t.name for t in tasks}
    got = set()
    for o in outcomes:
        assert o.name in names and o.name not in got, o.name
        got.add(o.name)
        yield o
    assert got == names, sorted(names - got)


def run_serial(tasks: list[ShardTask]) -> Iterator[ShardOutcome]:
    from pipeline.shards.task import write_shard

    for t in tasks:
        yield write_shard(t)
