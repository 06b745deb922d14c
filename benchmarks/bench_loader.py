"""Loader throughput: DALI (CPU backend here; `--device gpu` on a GPU machine) vs the reference PIL loader.

Both loaders read the same synthetic shard set (KITTI-like 640x192 JPEG q90 triplets, written with the real shard
layout) with the same augmentation (monodepth2 defaults + scale-crop), the same batch size and the same number of
CPU workers, in the same process. After a warm-up epoch each loader runs `--rounds` epochs
(alternating between the loaders); the best wall rate (triplets/s) and the lowest CPU time per triplet are
reported, with the DALI / reference ratios. Usage:

    .venv/bin/python benchmarks/bench_loader.py --samples 384 --threads 2 --batch-sizes 8,16 --rounds 3
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _frame(rng, w, h) -> bytes:
    coarse = rng.integers(0, 255, size=(12, 36, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)).astype(np.int16)
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


def _cpu_seconds() -> float:
    """CPU time of this process (all DALI threads) plus reaped children (DataLoader workers end with each epoch)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_epoch(loader, epoch: int) -> tuple[float, float]:
    """(triplets/s wall, CPU ms per triplet) of one full epoch."""
    c0, t0, n = _cpu_seconds(), time.perf_counter(), 0
    for b in loader.epoch_iterator(epoch):
        n += b.batch_size
    return n / (time.perf_counter() - t0), (_cpu_seconds() - c0) / n * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=384, help="triplets in the synthetic shard set")
    ap.add_argument("--size", default="640x192", help="stored and training size WxH")
    ap.add_argument("--batch-sizes", default="8,16", help="comma-separated batch sizes to try")
    ap.add_argument("--threads", type=int, default=2, help="DALI num_threads = reference DataLoader workers")
    ap.add_argument("--rounds", type=int, default=3, help="timed epochs per loader (after one warm-up epoch)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="DALI decode device")
    args = ap.parse_args()

    from pipeline.loader import LoaderConfig, build_train_loader

    w, h = (int(v) for v in args.size.split("x"))
    print(f"machine: {platform.machine()} {os.cpu_count()} cpus, python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as d:
        t0 = time.perf_counter()
        write_set(d, samples=args.samples, per_shard=64, size_wh=(w, h))
        print(
            f"shard set: {args.samples} triplets {w}x{h} JPEG q90, 64/shard, in {time.perf_counter() - t0:.1f} s"
        )
        print(
            "augmentation: defaults (flip 0.5, colour 0.5, scale-crop 0.5 up to 1.15); best of the timed epochs"
        )
        for bs in (int(v) for v in args.batch_sizes.split(",")):
            loaders = {}
            for kind in ("dali", "reference"):
                cfg = LoaderConfig(
                    loader=kind,
                    device=args.device if kind == "dali" else "cpu",
                    width=w,
                    height=h,
                    batch_size=bs,
                    num_threads=args.threads,
                    num_workers=args.threads,
                )
                loaders[kind] = build_train_loader(d, cfg)
                run_epoch(loaders[kind], 0)  # warm-up
            best = {k: (0.0, float("inf")) for k in loaders}
            for r in range(args.rounds):
                for kind, loader in loaders.items():  # alternate, so background load hits both alike
                    rate, cpu = run_epoch(loader, r + 1)
                    best[kind] = (max(best[kind][0], rate), min(best[kind][1], cpu))
            for kind, (rate, cpu) in best.items():
                print(f"batch {bs:3d} {kind:9s} {rate:7.1f} triplets/s   {cpu:6.1f} CPU ms/triplet")
            ratio = best["dali"][0] / best["reference"][0]
            cpu_ratio = best["reference"][1] / best["dali"][1]
            print(f"batch {bs:3d} DALI/reference: {ratio:.2f}x throughput, {cpu_ratio:.2f}x CPU efficiency")
        print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
