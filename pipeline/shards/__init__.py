"""WebDataset shard sets: writer (per-shard tasks), DALI indexes, manifest/errors/summary tables and a reader.

Layout at DST (local dir or s3:// prefix), see pipeline.schema: `<dataset>-<split>-%06d.tar` + `.idx`,
manifest.parquet, errors.parquet, summary.json (written last: the set is complete), plus `_parts/` while a run is
unfinished (per-shard records for resume; removed after summary.json is written).

Per shard the .idx is uploaded before the .tar, and a shard counts as finished only when its part record, .idx
sample count and .tar size agree (see pipeline/shards/task.py); readers refuse sets without summary.json.

Public API: read_shard_set(url) -> ShardSetSummary, shard_urls(url[, summary]) -> [(tar_url, idx_url)],
read_manifest(url), read_errors(url), iter_samples(url), ShardConfig, EvalMeta (meta.json of eval samples);
pipeline.shards.build.build_shard_set(cfg, dst, run_tasks=...) and jobs.preprocess.preprocess(cfg, dst) build sets.
"""

from __future__ import annotations

from pipeline.shards.config import ShardConfig
from pipeline.shards.encode import EvalMeta
from pipeline.shards.reader import (
    IncompleteShardSetError,
    iter_samples,
    iter_tar_samples,
    read_errors,
    read_manifest,
    read_shard_set,
    shard_urls,
)

__all__ = [
    "EvalMeta",
    "IncompleteShardSetError",
    "ShardConfig",
    "iter_samples",
    "iter_tar_samples",
    "read_errors",
    "read_manifest",
    "read_shard_set",
    "shard_urls",
]
