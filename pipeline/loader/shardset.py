"""Open a complete shard set (local dir or s3:// prefix): summary.json, tar URLs and the parsed DALI .idx files.

Both loaders address samples through the .idx entries (component -> byte offset and size inside the tar), so they
read the same samples in the same order. A set without summary.json is incomplete and refused. For object storage,
`localize` downloads the set once into a local cache directory and reuses files whose sha256 matches the summary.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import os
from dataclasses import dataclass, field

import numpy as np

from pipeline import storage
from pipeline.codecs import sha256_file, sha256_stream
from pipeline.schema import (
    ERRORS_FILE,
    FRAME_COMPONENTS,
    GT_COMPONENT,
    INTRINSICS_COMPONENT,
    MANIFEST_FILE,
    META_COMPONENT,
    SUMMARY_FILE,
    ShardSetSummary,
)
from pipeline.shards import read_shard_set

log = logging.getLogger(__name__)

TRAIN_COMPONENTS = (*FRAME_COMPONENTS, INTRINSICS_COMPONENT, META_COMPONENT)
EVAL_COMPONENTS = ("tgt.jpg", INTRINSICS_COMPONENT, META_COMPONENT, GT_COMPONENT)


@dataclass(frozen=True, kw_only=True)
class SampleEntry:
    """One sample of a shard set as its .idx describes it."""

    shard: int  # position of its tar in ShardSet.tar_urls
    key: str
    line: str  # the .idx line (used to write per-epoch index files for DALI)
    components: dict[str, tuple[int, int]]  # component -> (byte offset of the data in the tar, size)


@dataclass(frozen=True, kw_only=True)
class ShardSet:
    url: str  # where the tars are read from (the cache dir when a cache is used)
    summary: ShardSetSummary
    tar_urls: tuple[str, ...]
    samples: tuple[SampleEntry, ...]  # position = global sample id
    camera_motion: dict[str, np.ndarray] = field(default_factory=dict)
    """Training sets: key -> float32 (3, 4, 4) true camera motion target -> (prev, tgt, next) from the manifest
    (schema.Triplet.T_target_to_frames); samples without it are absent."""

    def camera_motion_BS44(self, keys: tuple[str, ...] | list[str], flips_B: np.ndarray) -> np.ndarray:
        """The true camera motions of a batch as the networks see it: mirrored where the frames were flipped
        (T -> F T F with F = diag(-1, 1, 1, 1)); NaN for samples without one. float32 (B, 3, 4, 4)."""
        out = np.full((len(keys), 3, 4, 4), np.nan, dtype=np.float32)
        mirror = np.diag([-1.0, 1.0, 1.0, 1.0]).astype(np.float32)
        for i, key in enumerate(keys):
            T = self.camera_motion.get(key)
            if T is not None:
                out[i] = mirror @ T @ mirror if bool(flips_B[i]) else T
        return out


def read_summary(url: str) -> ShardSetSummary:
    """summary.json of a complete set (pipeline.shards.read_shard_set: refuses incomplete sets, naming why)."""
    return read_shard_set(url)


def parse_index(text: str, *, shard: int, where: str) -> list[SampleEntry]:
    """Parse a DALI webdataset index (`v1.2 <n>` then per sample `ext offset size name ...`)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("v1.2"):
        raise ValueError(f"{where}: not a DALI v1.2 webdataset index")
    out = []
    for ln in lines[1:]:
        tok = ln.split()
        if len(tok) % 4:
            raise ValueError(f"{where}: malformed index line {ln[:80]!r}")
        comps, key = {}, None
        for i in range(0, len(tok), 4):
            ext, off, size, name = tok[i], int(tok[i + 1]), int(tok[i + 2]), tok[i + 3]
            comps[ext] = (off, size)
            k = name[: -len(ext) - 1]
            if key is not None and k != key:
                raise ValueError(f"{where}: index line mixes samples {key!r} and {k!r}")
            key = k
        out.append(SampleEntry(shard=shard, key=key or "", line=ln, components=comps))
    return out


def open_shard_set(url: str, *, kind: str, cache_dir: str = "", verify: str = "size") -> ShardSet:
    """Read summary.json and every .idx of a complete shard set of `kind` ("train" or "eval") and check them against
    each other, the manifest and the tars: `verify="size"` (every tar has summary.json's size and holds every byte
    its index points to: a truncated or replaced tar is refused before anything is read), "sha256" (also every tar's
    sha256 against summary.json: reads the whole set once). A cached set (`cache_dir`) is always checked by sha256."""
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify={verify!r}: must be one of {', '.join(VERIFY_MODES)}")
    if storage.is_remote(url) and cache_dir:
        url = localize(url, cache_dir)
    summary = read_summary(url)
    if summary.kind != kind:
        raise ValueError(
            f"{storage.join(url, SUMMARY_FILE)}: a {summary.kind!r} shard set, expected {kind!r}"
        )
    need = TRAIN_COMPONENTS if kind == "train" else EVAL_COMPONENTS
    samples: list[SampleEntry] = []
    tar_urls = []
    for i, info in enumerate(summary.shards):
        idx_url = storage.join(url, info.index_name)
        entries = parse_index(storage.read_text(idx_url), shard=i, where=idx_url)
        if len(entries) != info.num_samples:
            raise ValueError(f"{idx_url}: {len(entries)} samples, summary.json says {info.num_samples}")
        for e in entries:
            missing = [c for c in need if c not in e.components]
            if missing:
                raise ValueError(
                    f"{storage.join(url, info.name)}: sample {e.key!r} lacks {', '.join(missing)}"
                )
        tar_url = storage.join(url, info.name)
        _check_tar(tar_url, info, entries, verify=verify)
        samples.extend(entries)
        tar_urls.append(tar_url)
    if not samples:
        raise ValueError(f"{url}: the shard set holds no samples")
    if len(samples) != summary.num_samples:
        raise ValueError(f"{storage.join(url, SUMMARY_FILE)}: says {summary.num_samples} samples, its shards' "
                         f"indexes hold {len(samples)}")
    manifest = _manifest(url)
    if manifest is not None:
        _check_against_manifest(manifest, samples, where=storage.join(url, MANIFEST_FILE))
    motion = {}
    if kind == "train" and manifest is not None:
        motion = _camera_motion(manifest, storage.join(url, MANIFEST_FILE))
    return ShardSet(url=url, summary=summary, tar_urls=tuple(tar_urls), samples=tuple(samples), camera_motion=motion)


VERIFY_MODES = ("size", "sha256")


def _check_tar(tar_url: str, info, entries: list[SampleEntry], *, verify: str) -> None:
    """The tar has summary.json's size (and sha256 with verify="sha256") and holds every byte its index names."""
    actual = storage.size(tar_url)
    if actual != info.num_bytes:
        raise ValueError(f"{tar_url}: {actual} bytes, summary.json says {info.num_bytes} (truncated or replaced)")
    end = max((off + size for e in entries for off, size in e.components.values()), default=0)
    if end > info.num_bytes:
        raise ValueError(f"{tar_url}: its index points to byte {end}, past the end of the tar ({info.num_bytes} bytes)")
    if verify == "sha256":
        with storage.open_read(tar_url) as f:
            if sha256_stream(f) != info.sha256:
                raise ValueError(f"{tar_url}: sha256 differs from summary.json")


def _manifest(url: str):
    """manifest.parquet of a shard set (a pyarrow Table), or None for a set without one."""
    from pipeline.shards.tables import read_parquet

    manifest_url = storage.join(url, MANIFEST_FILE)
    return read_parquet(manifest_url) if storage.exists(manifest_url) else None


def _check_against_manifest(table, samples: list[SampleEntry], *, where: str) -> None:
    """The shards' indexes and the manifest list the same samples (a set whose tars or indexes lost samples, or
    whose manifest belongs to another set, is refused before anything is read from it)."""
    listed = table.column("key").to_pylist()
    indexed = [e.key for e in samples]
    if len(listed) != len(indexed) or set(listed) != set(indexed):
        missing = sorted(set(listed) - set(indexed))
        extra = sorted(set(indexed) - set(listed))
        detail = "; ".join(part for part in (
            f"{len(missing)} manifest samples not in the shards (e.g. {missing[0]})" if missing else "",
            f"{len(extra)} shard samples not in the manifest (e.g. {extra[0]})" if extra else "",
        ) if part) or "duplicate keys"
        raise ValueError(f"{where}: lists {len(listed)} samples, the shards hold {len(indexed)}: {detail}")


def _camera_motion(table, manifest_url: str) -> dict[str, np.ndarray]:
    """key -> (3, 4, 4) camera motion from the manifest (empty for sets written before the column existed)."""
    if "T_target_to_frames" not in table.column_names:
        return {}
    out = {}
    for key, values in zip(table.column("key").to_pylist(), table.column("T_target_to_frames").to_pylist()):
        if values is not None:
            if len(values) != 48:
                raise ValueError(f"{manifest_url}: sample {key!r} T_target_to_frames has {len(values)} values, expected 48")
            out[key] = np.asarray(values, dtype=np.float32).reshape(3, 4, 4)
    return out


def _verified(path: str, sha256: str) -> bool:
    """True if `path` exists with the expected sha256 (cached in `<path>.sha256` keyed by size and mtime)."""
    if not os.path.exists(path):
        return False
    st = os.stat(path)
    stamp = f"{sha256} {st.st_size} {st.st_mtime_ns}"
    marker = path + ".sha256"
    if os.path.exists(marker) and open(marker).read().strip() == stamp:
        return True
    if sha256_file(path) != sha256:
        return False
    storage.write_text(marker, stamp)
    return True


def localize(url: str, cache_dir: str) -> str:
    """Download a remote shard set into `cache_dir` (tars, .idx, tables, then summary.json); returns the local dir.

    Files already there are reused when their sha256 matches summary.json; a download whose sha256 does not match
    raises ValueError naming the object. Safe for several processes at once (a file lock per set; each file lands
    by atomic rename).
    """
    summary = read_summary(url)
    dest = os.path.join(cache_dir, hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:16])
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, ".lock"), "w") as lock:
        # ranks of one node: one downloads, the others wait and then find verified files
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _fill_cache(url, dest, summary)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return dest


def _fill_cache(url: str, dest: str, summary: ShardSetSummary) -> None:
    fetched = 0
    for info in summary.shards:
        tar = os.path.join(dest, info.name)
        idx = os.path.join(dest, info.index_name)
        if not _verified(tar, info.sha256):
            storage.get_file(storage.join(url, info.name), tar)
            fetched += 1
            if not _verified(tar, info.sha256):
                os.remove(tar)
                raise ValueError(f"{storage.join(url, info.name)}: sha256 differs from summary.json")
            storage.get_file(storage.join(url, info.index_name), idx)
        elif not os.path.exists(idx):
            storage.get_file(storage.join(url, info.index_name), idx)
    for name in (MANIFEST_FILE, ERRORS_FILE):
        storage.get_file(storage.join(url, name), os.path.join(dest, name))
    storage.write_text(os.path.join(dest, SUMMARY_FILE), summary.to_json())
    log.info("shard cache %s: %d of %d tars downloaded from %s", dest, fetched, len(summary.shards), url)


def load_npy(data: bytes, key: str) -> np.ndarray:
    """Decode gt.npy bytes (trailing zero padding is ignored) to a float32 depth map (2-D)."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise ValueError(f"sample {key!r}: gt.npy is not a valid .npy file ({e})") from e
    if arr.ndim != 2:
        raise ValueError(f"sample {key!r}: gt.npy has shape {arr.shape}, expected a 2-D depth map")
    return np.asarray(arr, dtype=np.float32)
