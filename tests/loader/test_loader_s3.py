"""Shard sets on object storage (moto S3 server in a subprocess): DALI's own S3 reader, fsspec ranged reads
(reference loader) and the local shard cache, each compared with reading the same set from local disk."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from pipeline import storage
from pipeline.loader import AugmentConfig, LoaderConfig, build_eval_loader, build_train_loader

pytestmark = pytest.mark.s3

AUG = AugmentConfig(flip_prob=0.5, color_prob=1.0, scale_crop_prob=1.0)


def _cfg(kind: str, **kw) -> LoaderConfig:
    base = dict(
        loader=kind,
        width=96,
        height=40,
        batch_size=4,
        num_threads=1,
        num_workers=0,
        device="cpu",
        augment=AUG,
    )
    base.update(kw)
    return LoaderConfig(**base)


def _upload(local_dir: str, url: str, *, with_summary: bool = True) -> str:
    for name in sorted(os.listdir(local_dir)):
        if name == "summary.json" and not with_summary:
            continue
        storage.put_file(os.path.join(local_dir, name), storage.join(url, name))
    return url


def _same(a, b) -> None:
    assert [x.keys for x in a] == [x.keys for x in b]
    for x, y in zip(a, b):
        assert torch.equal(x.frames_aug_BSCHW, y.frames_aug_BSCHW) and torch.equal(x.K_B33, y.K_B33)


@pytest.mark.parametrize("kind", ["dali", "reference"])
def test_direct_s3_reads_match_local(train_set, s3_bucket, kind):
    url = _upload(train_set, f"{s3_bucket}/sets/train")
    workers = 2 if kind == "reference" else 0  # s3fs in forked DataLoader workers
    loader = build_train_loader(url, _cfg(kind, num_workers=workers), rank=1, world_size=2)
    assert loader.shard_set.tar_urls[0].startswith("s3://")
    remote = list(loader.epoch_iterator(1, start_step=1))
    local = list(
        build_train_loader(train_set, _cfg(kind), rank=1, world_size=2).epoch_iterator(1, start_step=1)
    )
    assert len(remote) == 2
    _same(remote, local)


def test_dali_direct_s3_eval(eval_set, s3_bucket):
    url = _upload(eval_set, f"{s3_bucket}/sets/eval")
    remote = list(build_eval_loader(url, _cfg("dali")))
    local = list(build_eval_loader(eval_set, _cfg("dali")))
    assert [b.keys for b in remote] == [b.keys for b in local]
    assert all(torch.equal(a.image_B3HW, b.image_B3HW) for a, b in zip(remote, local))


def test_shard_cache_downloads_once_and_verifies(train_set, s3_bucket, tmp_path, caplog):
    url = _upload(train_set, f"{s3_bucket}/sets/cached")
    cache = str(tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="pipeline.loader.shardset"):
        loader = build_train_loader(url, _cfg("dali", cache_dir=cache))
    assert loader.shard_set.url.startswith(cache) and not storage.is_remote(loader.shard_set.tar_urls[0])
    assert "4 of 4 tars downloaded" in caplog.text
    _same(list(loader.epoch_iterator(0)), list(build_train_loader(train_set, _cfg("dali")).epoch_iterator(0)))

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipeline.loader.shardset"):
        again = build_train_loader(url, _cfg("reference", cache_dir=cache))
    assert "0 of 4 tars downloaded" in caplog.text
    tar = again.shard_set.tar_urls[2]
    with open(tar, "r+b") as f:  # a damaged cached tar is detected (sha256) and fetched again
        f.seek(2000)
        f.write(b"XXXX")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipeline.loader.shardset"):
        third = build_train_loader(url, _cfg("reference", cache_dir=cache))
    assert "1 of 4 tars downloaded" in caplog.text
    _same(
        list(third.epoch_iterator(0)),
        list(build_train_loader(train_set, _cfg("reference")).epoch_iterator(0)),
    )


def test_incomplete_s3_set_is_refused(train_set, s3_bucket, tmp_path):
    url = _upload(train_set, f"{s3_bucket}/sets/partial", with_summary=False)
    with pytest.raises(FileNotFoundError, match="incomplete|no shard set"):
        build_train_loader(url, _cfg("dali"))
    with pytest.raises(FileNotFoundError, match="incomplete|no shard set"):
        build_train_loader(url, _cfg("reference", cache_dir=str(tmp_path / "c")))
