"""Read a shard set: its summary (refusing incomplete sets), shard URLs, tables and raw samples."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator

import pyarrow as pa

from pipeline import storage
from pipeline.schema import ERRORS_FILE, MANIFEST_FILE, SUMMARY_FILE, ShardSetSummary
from pipeline.shards.tables import read_parquet
from pipeline.shards.task import PARTS_DIR


class IncompleteShardSetError(FileNotFoundError):
    """The URL holds no shard set, or one whose writer has not finished (no summary.json, or missing shards)."""


def read_shard_set(url: str) -> ShardSetSummary:
    """The summary of the complete shard set at `url`; IncompleteShardSetError (with the reason) otherwise."""
    summary_url = storage.join(url, SUMMARY_FILE)
    if not storage.exists(summary_url):
        if storage.exists(storage.join(url, PARTS_DIR)) or storage.glob(url, "*.tar"):
            raise IncompleteShardSetError(
                f"{url}: incomplete shard set (no {SUMMARY_FILE}): `rmdepth shard` is still running or was "
                "interrupted; rerun the same command to finish it")
        raise IncompleteShardSetError(f"{url}: no shard set here ({SUMMARY_FILE} not found)")
    summary = ShardSetSummary.from_json(storage.read_text(summary_url))
    present = set(storage.listdir(url))
    missing = [n for s in summary.shards for n in (s.name, s.index_name) if n not in present]
    missing += [n for n in (MANIFEST_FILE, ERRORS_FILE) if n not in present]
    if missing:
        raise IncompleteShardSetError(f"{url}: incomplete shard set: {len(missing)} file(s) listed in {SUMMARY_FILE} "
                                      f"are missing, e.g. {missing[0]}")
    return summary


def shard_urls(url: str, summary: ShardSetSummary | None = None) -> list[tuple[str, str]]:
    """[(tar_url, idx_url)] of a complete set, in shard order."""
    summary = summary or read_shard_set(url)
    return [(storage.join(url, s.name), storage.join(url, s.index_name)) for s in summary.shards]


def read_manifest(url: str) -> pa.Table:
    read_shard_set(url)
    return read_parquet(storage.join(url, MANIFEST_FILE))


def read_errors(url: str) -> pa.Table:
    read_shard_set(url)
    return read_parquet(storage.join(url, ERRORS_FILE))


def iter_tar_samples(tar_url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {component: bytes}) for each sample of one tar (members of a sample are adjacent)."""
    key, parts = None, {}
    with storage.open_read(tar_url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            if not m.isfile():
                continue
            base = m.name.rsplit("/", 1)[-1]
            k, _, comp = base.partition(".")
            if k != key and key is not None:
                yield key, parts
                parts = {}
            key = k
            member = tar.extractfile(m)
            assert member is not None  # a regular file (checked above)
            parts[comp] = member.read()
    if key is not None:
        yield key, parts


def iter_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Every sample of a complete set, shard by shard."""
    for tar_url, _ in shard_urls(url):
        yield from iter_tar_samples(tar_url)
