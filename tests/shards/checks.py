"""Independent checks of a written shard set (used by several tests): content vs source files, tables, hashes."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
from PIL import Image

from pipeline import storage
from pipeline.intrinsics import resize_K
from pipeline.shards import iter_tar_samples, read_manifest, read_shard_set, shard_urls

JPEG_TOL = 8.0  # mean absolute difference allowed between a stored JPEG and the resized source (0..255)


def source_frame(path: str, crop_bottom: int, size_wh) -> np.ndarray:
    with Image.open(io.BytesIO(storage.read_bytes(path))) as im:
        im = im.convert("RGB")
        if crop_bottom:
            im = im.crop((0, 0, im.size[0], im.size[1] - crop_bottom))
        return np.asarray(im.resize(tuple(size_wh), Image.Resampling.BILINEAR), dtype=np.float32)


def check_set(url: str, *, K_source=None) -> dict[str, dict]:
    """Verify every shard of the set at url; returns {key: meta dict}. K_source: {key: (K_33, src_wh)} optional."""
    summary = read_shard_set(url)
    manifest = {r["key"]: r for r in read_manifest(url).to_pylist()}
    assert len(manifest) == summary.num_samples
    metas = {}
    for (tar_url, idx_url), info in zip(shard_urls(url, summary), summary.shards, strict=True):
        data = storage.read_bytes(tar_url)
        assert hashlib.sha256(data).hexdigest() == info.sha256 and len(data) == info.num_bytes
        # the DALI index must describe exactly these bytes
        idx_lines = storage.read_text(idx_url).strip().split("\n")
        assert idx_lines[0] == f"v1.2 {info.num_samples}"
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            members = {m.name: m for m in tar.getmembers()}
        for line in idx_lines[1:]:
            fields = line.split()
            for i in range(0, len(fields), 4):
                ext, offset, size, name = fields[i], int(fields[i + 1]), int(fields[i + 2]), fields[i + 3]
                assert name.endswith("." + ext) and members[name].offset_data == offset and members[name].size == size
        n = 0
        for key, comps in iter_tar_samples(tar_url):
            n += 1
            row = manifest[key]
            assert row["shard"] == info.name and key not in metas
            meta = json.loads(comps["meta.json"])
            metas[key] = meta
            K = np.frombuffer(comps["k.f32"], dtype="<f4").reshape(3, 3)
            np.testing.assert_allclose(K.ravel(), row["k"], rtol=1e-6)
            stored = tuple(meta["stored_size_wh"])
            if K_source is not None:
                K_src, src_wh = K_source[key]
                np.testing.assert_allclose(K, resize_K(np.array(K_src), src_wh, stored), rtol=1e-5)
            if "prev.jpg" in comps:
                assert sorted(comps) == ["k.f32", "meta.json", "next.jpg", "prev.jpg", "tgt.jpg"]
                pairs = zip(("prev.jpg", "tgt.jpg", "next.jpg"), meta["sources"], strict=True)
            else:
                assert sorted(comps) == ["gt.npy", "k.f32", "meta.json", "tgt.jpg"]
                pairs = [("tgt.jpg", meta["source"])]
                gt = np.load(io.BytesIO(comps["gt.npy"]))
                assert gt.dtype == np.float32 and gt.shape == (meta["gt_size_wh"][1], meta["gt_size_wh"][0])
            for comp, src in pairs:
                got = np.asarray(Image.open(io.BytesIO(comps[comp])).convert("RGB"), dtype=np.float32)
                want = source_frame(src, row["crop_bottom"], stored)
                assert got.shape == want.shape
                err = np.abs(got - want).mean()
                assert err < JPEG_TOL, (key, comp, err)
                if comp == "prev.jpg":  # the check can tell frames apart
                    other = source_frame(meta["sources"][1], row["crop_bottom"], stored)
                    assert np.abs(got - other).mean() > err, (key, "prev.jpg is closer to the tgt source than to its own")
        assert n == info.num_samples
    assert set(metas) == set(manifest)
    return metas
