"""Tiny synthetic shard sets in the layout of pipeline/schema.py (tars, DALI .idx, manifest/errors tables,
summary.json written last). Written here rather than by `rmdepth shard` to control pixels, intrinsics and GT exactly.

Shape legend: H height, W width, C=3.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

from pipeline.schema import (
    ERRORS_FILE,
    MANIFEST_FILE,
    ShardInfo,
    ShardSetSummary,
    TripletMeta,
    make_key,
)
from pipeline.shards.tables import ERRORS_SCHEMA, MANIFEST_SCHEMA, write_parquet

STORED_WH = (128, 48)
K0 = np.array([[100.0, 0.0, 63.2], [0.0, 96.0, 22.7], [0.0, 0.0, 1.0]])
POINT_XYZ = np.array([0.21, -0.06, 2.0])  # projects to about (73.7, 19.8) in the stored frame


def jpeg(img_HWC: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img_HWC).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def texture(seed: int) -> np.ndarray:
    """A smooth, colourful uint8 image (JPEG-friendly, with structure for resampling comparisons)."""
    w, h = STORED_WH
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for _ in range(3):
        fx, fy, ph = rng.uniform(0.03, 0.15), rng.uniform(0.03, 0.2), rng.uniform(0, 6.28)
        chans.append(0.5 + 0.35 * np.sin(fx * x + fy * y + ph) + 0.1 * (x / w) - 0.05 * (y / h))
    return (np.clip(np.stack(chans, -1), 0, 1) * 255).round().astype(np.uint8)


def dot_image() -> np.ndarray:
    """Dark frame with a bright Gaussian dot at the projection of POINT_XYZ under K0 (pixel centres at integers)."""
    w, h = STORED_WH
    u, v = (K0 @ POINT_XYZ)[:2] / POINT_XYZ[2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    g = np.exp(-((x - u) ** 2 + (y - v) ** 2) / (2 * 1.5**2))
    img = 20 + 230 * g
    return np.repeat(img[..., None], 3, axis=2).round().astype(np.uint8)


def camera_motion(i: int) -> np.ndarray | None:
    """The true camera motion target -> (prev, tgt, next) of training sample i, (3, 4, 4); None for every 4th
    sample (a triplet without oxts)."""
    if i % 4 == 3:
        return None
    out = np.tile(np.eye(4), (3, 1, 1))
    c, s = np.cos(0.01 * i), np.sin(0.01 * i)
    R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    out[2, :3, :3], out[2, :3, 3] = R, [0.05 * i, 0.01, -1.0]
    out[0] = np.linalg.inv(out[2])
    return out


def _wds2idx(tar: str, idx: str) -> None:
    tool = os.path.join(os.path.dirname(sys.executable), "wds2idx")
    subprocess.run([tool, tar, idx], check=True, capture_output=True)


def write_shard_set(
    dst: str,
    *,
    kind: str = "train",
    num_samples: int = 24,
    per_shard: int = 7,
    frames: str = "texture",
    dataset: str = "synth",
) -> str:
    """Write a complete shard set into the local directory `dst`; returns dst.

    frames: "texture" (three different frames per sample), "same" (three identical frames), "dot" (dot_image()).
    """
    os.makedirs(dst, exist_ok=True)
    split = "train" if kind == "train" else "test"
    infos, rows = [], []
    for s, start in enumerate(range(0, num_samples, per_shard)):
        name = f"{dataset}-{split}-{s:06d}.tar"
        tar = os.path.join(dst, name)
        with wds.TarWriter(tar, mtime=0) as w:
            for i in range(start, min(start + per_shard, num_samples)):
                key = make_key(dataset, f"seq{i % 3}", "02", f"{i:010d}")
                if frames == "dot":
                    imgs = [dot_image()] * 3
                elif frames == "same":
                    imgs = [texture(i)] * 3
                else:
                    imgs = [texture(3 * i + j) for j in range(3)]
                K = K0.copy()
                if frames != "dot":
                    K[0, 2] += 0.1 * (i % 5)  # per-sample intrinsics
                sample = {"__key__": key, "k.f32": K.astype("<f4").tobytes()}
                motion = camera_motion(i) if kind == "train" else None
                flat = None if motion is None else tuple(float(v) for v in motion.reshape(-1))
                if kind == "train":
                    meta = TripletMeta(
                        key=key,
                        dataset=dataset,
                        split=split,
                        sequence=f"seq{i % 3}",
                        camera="02",
                        frame_ids=(i - 1, i, i + 1),
                        sources=("a", "b", "c"),
                        orig_size_wh=STORED_WH,
                        stored_size_wh=STORED_WH,
                        T_target_to_frames=flat,
                    )
                    sample.update(
                        {"prev.jpg": jpeg(imgs[0]), "tgt.jpg": jpeg(imgs[1]), "next.jpg": jpeg(imgs[2])}
                    )
                    sample["meta.json"] = meta.to_json()
                else:
                    gt = np.full((20 + i % 4, 60 + 2 * (i % 3)), float(i) + 0.5, dtype=np.float32)
                    buf = io.BytesIO()
                    np.save(buf, gt)
                    sample.update({"tgt.jpg": jpeg(imgs[1]), "gt.npy": buf.getvalue()})
                    sample["meta.json"] = json.dumps({"key": key, "dataset": dataset}).encode()
                w.write(sample)
                rows.append({"key": key, "shard": name, "dataset": dataset, "split": split, "frame": i,
                             "T_target_to_frames": None if flat is None else list(flat)})
        idx_name = name[:-4] + ".idx"
        _wds2idx(tar, os.path.join(dst, idx_name))
        data = open(tar, "rb").read()
        infos.append(
            ShardInfo(
                name=name,
                index_name=idx_name,
                num_samples=min(start + per_shard, num_samples) - start,
                sha256=hashlib.sha256(data).hexdigest(),
                num_bytes=len(data),
            )
        )
    summary = ShardSetSummary(
        dataset=dataset,
        split=split,
        kind=kind,
        num_samples=num_samples,
        stored_size_wh=STORED_WH,
        shards=tuple(infos),
        num_errors=0,
        config={},
        code_version="test",
        created_at="2026-11-23T00:00:00Z",
    )
    write_parquet(os.path.join(dst, MANIFEST_FILE), rows, MANIFEST_SCHEMA)
    write_parquet(os.path.join(dst, ERRORS_FILE), [], ERRORS_SCHEMA)
    with open(os.path.join(dst, "summary.json"), "w") as f:
        f.write(summary.to_json())
    return dst


def gt_value(key: str) -> float:
    return float(int(key.rsplit("_", 1)[1])) + 0.5


def damaged_copy(src: str, dst: str, *, kind: str, samples: tuple[int, ...],
                 components: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """A copy of the local shard set `src` at `dst` in which each of `samples` has one member (`components`, in
    order; default its target JPEG) zeroed in place: same size, so the tar and its .idx stay consistent and only the
    content is broken. Returns [(tar path, the sample's index entry)] in the order of `samples`."""
    from pipeline.loader.shardset import open_shard_set

    shutil.copytree(src, dst)
    shard_set = open_shard_set(dst, kind=kind)
    out = []
    for sample, component in zip(samples, components or ("tgt.jpg",) * len(samples), strict=True):
        entry = shard_set.samples[sample]
        off, size = entry.components[component]
        tar = shard_set.tar_urls[entry.shard]
        os.chmod(tar, 0o644)
        with open(tar, "r+b") as f:
            f.seek(off)
            f.write(b"\0" * size)
        out.append((tar, entry))
    return out
