"""One output shard: encode its planned records, write tar + DALI index locally, upload, record the result.

Pure Python (no Ray): `jobs/preprocess.py` runs `write_shard` as a Ray task, tests call it directly.

Visibility and resume protocol at DST, per shard (documented in pipeline/shards/__init__.py):
  1. `_parts/<stem>.json` (manifest rows, skipped inputs, sample count, sha256, byte count, plan digest)
  2. `<stem>.idx`, built from the exact local tar bytes
  3. `<stem>.tar`, uploaded LAST (local: temp name + rename; S3: one PUT / completed multipart)
A shard is finished when its part record matches the current plan digest and (for a non-empty shard) its .idx
announces that many samples and its .tar has the recorded size. Anything else is redone from scratch, so a crash
at any point leaves nothing that counts as finished but is not.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from pipeline import faults, storage
from pipeline.codecs import sha256_file
from pipeline.shards.encode import DecodeError, FrameCache, encode_eval, encode_triplet
from pipeline.shards.tarfile_io import index_num_samples, write_index, write_tar
from pipeline.sources.records import SkippedInput

PARTS_DIR = "_parts"


@dataclass(frozen=True, kw_only=True)
class ShardTask:
    dst: str
    name: str  # <dataset>-<split>-%06d.tar
    kind: str  # train | eval
    records: tuple  # Triplet or EvalFrame, in sample order
    stored_wh: tuple[int, int]
    jpeg_quality: int
    plan_digest: str  # sha256 of the config and this shard's keys

    @property
    def stem(self) -> str:
        return self.name[: -len(".tar")]

    @property
    def index(self) -> int:
        """The shard's number in the set (the %06d of its name)."""
        return int(self.stem.rsplit("-", 1)[1])


@dataclass(kw_only=True)
class ShardOutcome:
    name: str
    index_name: str
    num_samples: int
    sha256: str
    num_bytes: int
    plan_digest: str
    rows: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    reused: bool = False

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("reused")
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ShardOutcome:
        return cls(**json.loads(text))


def part_url(dst: str, stem: str) -> str:
    return storage.join(dst, PARTS_DIR, f"{stem}.json")


def finished(task: ShardTask) -> ShardOutcome | None:
    """The recorded outcome if this shard is complete at DST for the current plan, else None."""
    url = part_url(task.dst, task.stem)
    if not storage.exists(url):
        return None
    try:
        out = ShardOutcome.from_json(storage.read_text(url))
    except (ValueError, TypeError, KeyError):
        return None
    if out.plan_digest != task.plan_digest:
        return None
    if out.num_samples:
        tar_url, idx_url = storage.join(task.dst, task.name), storage.join(task.dst, out.index_name)
        if not (storage.exists(idx_url) and storage.exists(tar_url)):
            return None
        try:
            if index_num_samples(storage.read_text(idx_url)) != out.num_samples:
                return None
        except ValueError:
            return None
        if storage.size(tar_url) != out.num_bytes:
            return None
    out.reused = True
    return out


def _encode_all(task: ShardTask) -> tuple[list, list[dict], list[dict]]:
    from pipeline.sources import (
        SOURCES,  # sources import pipeline.shards.config; keep the package import light
    )

    samples, rows, skipped = [], [], []
    cache = FrameCache()
    for rec in task.records:
        try:
            if task.kind == "train":
                components, row = encode_triplet(rec, stored_wh=task.stored_wh, quality=task.jpeg_quality, cache=cache)
            else:
                try:
                    gt = SOURCES[rec.dataset].load_gt(rec)
                except (ValueError, OSError) as e:
                    skipped.append(asdict(SkippedInput(file=rec.extra.get("gt_path", ""), reason=str(e), stage="gt",
                                                       sequence=rec.sequence, key=rec.key)))
                    continue
                components, row = encode_eval(rec, stored_wh=task.stored_wh, quality=task.jpeg_quality, gt_HW=gt)
        except DecodeError as e:
            skipped.append(asdict(SkippedInput(file=e.file, reason=e.reason, stage="decode", sequence=rec.sequence,
                                               key=rec.key)))
            continue
        row["shard"] = task.name
        samples.append((rec.key, components))
        rows.append(row)
    return samples, rows, skipped


def _upload_tar(local: str, url: str, *, index: int) -> None:
    if faults.armed("mid_tar", index=index):  # simulate a writer killed half-way through a non-atomic upload
        fs, path = storage.filesystem(url)
        with open(local, "rb") as f:
            half = f.read(os.path.getsize(local) // 2)
        out = fs.open(path, "wb")
        out.write(half)
        out.flush()
        faults.crash()
    storage.put_file(local, url)


def write_shard(task: ShardTask) -> ShardOutcome:
    """Make one shard complete at DST (or return the finished one): idempotent and safe to retry."""
    done = finished(task)
    if done is not None:
        return done
    samples, rows, skipped = _encode_all(task)
    with storage.local_tempdir(prefix="rmdepth-shard-") as tmp:
        tar_local, idx_local = os.path.join(tmp, task.name), os.path.join(tmp, f"{task.stem}.idx")
        out = ShardOutcome(name=task.name, index_name=f"{task.stem}.idx", num_samples=len(samples), sha256="",
                           num_bytes=0, plan_digest=task.plan_digest, rows=rows, skipped=skipped)
        if samples:
            write_tar(tar_local, samples)
            write_index(tar_local, idx_local)
            out.sha256 = sha256_file(tar_local)
            out.num_bytes = os.path.getsize(tar_local)
        storage.write_text(part_url(task.dst, task.stem), out.to_json())
        if samples:
            storage.put_file(idx_local, storage.join(task.dst, out.index_name))
            faults.inject("before_tar", index=task.index)
            _upload_tar(tar_local, storage.join(task.dst, task.name), index=task.index)
    faults.inject("after_shard", index=task.index)
    return out
