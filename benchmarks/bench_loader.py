"""Loader throughput: DALI (CPU backend here; `--device gpu` on a GPU machine) vs the reference PIL loader.

Both loaders read the same synthetic shard set (KITTI-like 640x192 JPEG q90 triplets, written with the real shard
layout) with the same augmentation (monodepth2 defaults + scale-crop), the same batch size and the same number of
CPU workers, in the same process. Each is run for `--epochs` epochs; the rate of the last (warm) epoch is reported in
triplets/s, plus the DALI / reference ratio. Usage:

    .venv/bin/python benchmarks/bench_loader.py --samples 384 --threads 2 --batch-size 8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _frame(rng, w, h) -> bytes:
    coarse = rng.integers(0, 255, size=(12, 36, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC)).astype(np.int16)
    img = np.clip(img + rng.integers(-12, 12, size=img.shape), 0, 255).astype(
        np.uint8
    )  # texture, like photos
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_set(dst: str, *, samples: int, per_shard: int, size_wh: tuple[int, int]) -> None:
    import hashlib
    import subprocess

    import webdataset as wds

    from pipeline.schema import ERRORS_FILE, MANIFEST_FILE, ShardInfo, ShardSetSummary, make_key
    from pipeline.shards.tables import ERRORS_SCHEMA, MANIFEST_SCHEMA, write_parquet

    rng = np.random.default_rng(0)
    w, h = size_wh
    K = np.array([[0.58 * w, 0, w / 2 - 0.5], [0, 1.92 * h, h / 2 - 0.5], [0, 0, 1]], dtype="<f4")
    infos, rows = [], []
    for s, start in enumerate(range(0, samples, per_shard)):
        name = f"bench-train-{s:06d}.tar"
        with wds.TarWriter(os.path.join(dst, name), mtime=0) as tw:
            for i in range(start, min(start + per_shard, samples)):
                key = make_key("bench", "seq", "02", f"{i:010d}")
                tw.write(
                    {
                        "__key__": key,
                        "prev.jpg": _frame(rng, w, h),
                        "tgt.jpg": _frame(rng, w, h),
                        "next.jpg": _frame(rng, w, h),
                        "k.f32": K.tobytes(),
                        "meta.json": json.dumps({"key": key}).encode(),
                    }
                )
                rows.append({"key": key, "shard": name})
        tar = os.path.join(dst, name)
        tool = os.path.join(os.path.dirname(sys.executable), "wds2idx")
        subprocess.run([tool, tar, tar[:-4] + ".idx"], check=True, capture_output=True)
        data = open(tar, "rb").read()
        infos.append(
            ShardInfo(
                name=name,
                index_name=name[:-4] + ".idx",
                num_samples=min(start + per_shard, samples) - start,
                sha256=hashlib.sha256(data).hexdigest(),
                num_bytes=len(data),
            )
        )
    write_parquet(os.path.join(dst, MANIFEST_FILE), rows, MANIFEST_SCHEMA)
    write_parquet(os.path.join(dst, ERRORS_FILE), [], ERRORS_SCHEMA)
    summary = ShardSetSummary(
        dataset="bench",
        split="train",
        kind="train",
        num_samples=samples,
        stored_size_wh=size_wh,
        shards=tuple(infos),
        num_errors=0,
        config={},
        code_version="bench",
        created_at="",
    )
    with open(os.path.join(dst, "summary.json"), "w") as f:
        f.write(summary.to_json())


def measure(url: str, cfg, epochs: int) -> tuple[float, int]:
    from pipeline.loader import build_train_loader

    loader = build_train_loader(url, cfg)
    rate = 0.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        n = 0
        for b in loader.epoch_iterator(epoch):
            n += b.batch_size
        rate = n / (time.perf_counter() - t0)
    return rate, loader.num_batches_per_epoch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=384, help="triplets in the synthetic shard set")
    ap.add_argument("--size", default="640x192", help="stored and training size WxH")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="DALI num_threads = reference DataLoader workers")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per loader; the last one is timed")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="DALI decode device")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()

    from pipeline.loader import LoaderConfig

    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as d:
        t0 = time.perf_counter()
        write_set(d, samples=args.samples, per_shard=64, size_wh=(w, h))
        print(f"shard set: {args.samples} triplets {w}x{h} JPEG q90 in {time.perf_counter() - t0:.1f} s")
        common = dict(width=w, height=h, batch_size=args.batch_size, num_threads=args.threads)
        results = {}
        for kind in ("dali", "reference"):
            if kind == "reference" and args.skip_reference:
                continue
            cfg = LoaderConfig(
                loader=kind,
                device=args.device if kind == "dali" else "cpu",
                num_workers=args.threads,
                **common,
            )
            rate, nb = measure(d, cfg, args.epochs)
            results[kind] = rate
            print(
                f"{kind:9s} {rate:7.1f} triplets/s  ({nb} batches of {args.batch_size}, {args.threads} threads)"
            )
        if "reference" in results:
            print(f"ratio DALI/reference: {results['dali'] / results['reference']:.2f}x")
        print(f"machine: {platform.machine()} {os.cpu_count()} cpus, load avg {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
