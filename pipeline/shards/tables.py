"""Parquet tables of a shard set: manifest (one row per sample) and errors (one row per skipped input)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage

MANIFEST_SCHEMA = pa.schema([
    ("key", pa.string()), ("shard", pa.string()), ("dataset", pa.string()), ("split", pa.string()),
    ("sequence", pa.string()), ("camera", pa.string()), ("frame_ids", pa.list_(pa.int64())), ("frame", pa.int64()),
    ("k", pa.list_(pa.float32())), ("fx", pa.float32()), ("fy", pa.float32()), ("cx", pa.float32()),
    ("cy", pa.float32()), ("orig_w", pa.int32()), ("orig_h", pa.int32()), ("crop_bottom", pa.int32()),
    ("stored_w", pa.int32()), ("stored_h", pa.int32()), ("gt_w", pa.int32()), ("gt_h", pa.int32()),
    ("gt_source", pa.string()), ("source", pa.string()),
    ("T_target_to_frames", pa.list_(pa.float64())),  # training triplets: schema.Triplet.T_target_to_frames, or null
])
ERRORS_SCHEMA = pa.schema([
    ("file", pa.string()), ("reason", pa.string()), ("stage", pa.string()), ("sequence", pa.string()),
    ("key", pa.string()),
])


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist([{name: r.get(name) for name in schema.names} for r in rows], schema=schema)


def write_parquet(url: str, rows: list[dict], schema: pa.Schema) -> None:
    buf = io.BytesIO()
    pq.write_table(_table(rows, schema), buf)
    storage.write_bytes(url, buf.getvalue())


def read_parquet(url: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(storage.read_bytes(url)))
