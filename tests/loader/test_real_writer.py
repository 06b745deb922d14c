"""The loaders on shard sets written by the real shard job (`python -m jobs.preprocess --no-ray`), train and eval."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.loader import LoaderConfig, build_eval_loader, build_train_loader
from pipeline.shards import read_manifest
from tests.shards.conftest import run_cli
from tests.shards.handmade import make_kitti


@pytest.fixture(scope="module")
def kitti_sets(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("kitti") / "raw")
    make_kitti(root)
    out = {}
    for kind in ("train", "eval"):
        dst = str(tmp_path_factory.mktemp("sets") / kind)
        args = ["--no-ray", "--dataset", "kitti", "--input", root, "--output", dst, "--size", "48x16"]
        args += ["--samples-per-shard", "3"] + (["--eval"] if kind == "eval" else [])
        proc = run_cli(*args)
        if proc.returncode != 0:
            pytest.fail(proc.stderr[-2000:])
        out[kind] = dst
    return out


@pytest.mark.parametrize("kind", ["dali", "reference"])
def test_loaders_read_real_shard_sets(kitti_sets, kind):
    cfg = LoaderConfig(
        loader=kind, width=32, height=16, batch_size=2, num_threads=1, num_workers=0, device="cpu"
    )
    loader = build_train_loader(kitti_sets["train"], cfg)
    manifest = {r["key"] for r in read_manifest(kitti_sets["train"]).to_pylist()}
    batches = list(loader.epoch_iterator(0))
    assert len(batches) == loader.num_batches_per_epoch == len(manifest) // 2
    keys = [k for b in batches for k in b.keys]
    assert len(set(keys)) == len(keys) and set(keys) <= manifest
    for b in batches:
        assert b.frames_BSCHW.shape == (2, 3, 3, 16, 32) and torch.isfinite(b.K_B33).all()
    ev = build_eval_loader(kitti_sets["eval"], cfg)
    eval_keys = {r["key"] for r in read_manifest(kitti_sets["eval"]).to_pylist()}
    seen = []
    for eb in ev:
        seen += [k for k, v in zip(eb.keys, eb.valid_B.tolist()) if v]
        assert all(g.dtype == np.float32 and g.ndim == 2 for g in eb.gt_depths)
    assert sorted(seen) == sorted(eval_keys)


def test_a_set_that_disagrees_with_its_manifest_is_refused(kitti_sets, tmp_path):
    """A shard dropped from summary.json (with the sample count made to match): the indexes no longer hold what
    the manifest lists, and opening the set says so instead of evaluating a subset."""
    import json
    import shutil

    from pipeline.loader.shardset import open_shard_set

    for kind in ("train", "eval"):
        dst = str(tmp_path / kind)
        shutil.copytree(kitti_sets[kind], dst)
        path = f"{dst}/summary.json"
        summary = json.loads(open(path).read())
        dropped = summary["shards"].pop()
        summary["num_samples"] -= dropped["num_samples"]
        open(path, "w").write(json.dumps(summary))
        with pytest.raises(ValueError, match="manifest.parquet: lists .* samples, the shards hold .*not in the shards"):
            open_shard_set(dst, kind=kind)
        summary["num_samples"] += 1
        open(path, "w").write(json.dumps(summary))
        with pytest.raises(ValueError, match="summary.json: says .* samples, its shards' indexes hold"):
            open_shard_set(dst, kind=kind)


def test_a_truncated_or_altered_tar_is_refused_when_the_set_is_opened(kitti_sets, tmp_path):
    """A tar cut short (its index now points past its end) is refused at open, naming the tar; a tar altered in place
    (same size) passes the size check and is refused by loader.verify=sha256; the build fails the same way."""
    import os
    import shutil

    from pipeline.loader.shardset import open_shard_set

    dst = str(tmp_path / "train")
    shutil.copytree(kitti_sets["train"], dst)
    shard_set = open_shard_set(dst, kind="train", verify="sha256")
    tar = shard_set.tar_urls[1]
    os.chmod(tar, 0o644)
    size = os.path.getsize(tar)
    with open(tar, "r+b") as f:  # same size, one byte of a member changed
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    open_shard_set(dst, kind="train")  # the default size check cannot see it
    with pytest.raises(ValueError, match=f"^{tar}: sha256 differs from summary.json$"):
        open_shard_set(dst, kind="train", verify="sha256")
    cfg = LoaderConfig(loader="reference", width=32, height=16, batch_size=2, num_workers=0, verify="sha256")
    with pytest.raises(ValueError, match="sha256 differs"):
        build_train_loader(dst, cfg)
    with open(tar, "r+b") as f:
        f.truncate(size - 1024)
    with pytest.raises(ValueError, match=f"^{tar}: {size - 1024} bytes, summary.json says {size} "):
        open_shard_set(dst, kind="train")
    with pytest.raises(ValueError, match="verify='md5': must be one of size, sha256"):
        open_shard_set(dst, kind="train", verify="md5")
