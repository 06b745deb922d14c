"""A training shard that holds a damaged frame: the run skips it, names it (shard and key) in the log, counts it in
the checkpoint metrics and completes; beyond loader.max_bad_samples the run stops with an error naming it."""

from __future__ import annotations

import os
import shutil

import pytest

from engine import checkpoint as ck
from engine.data import build_loaders
from engine.evaluate import TooManyBadFramesError
from engine.runtime import LocalRuntime
from engine.trainer import fit
from pipeline.loader.build import build_train_loader
from pipeline.loader.shardset import open_shard_set
from tests.loader.fixture_shards import damaged_copy
from tests.train.conftest import small_config

RUN = ["train.epochs=2", "train.max_steps_per_epoch=3", "train.validate=false", "loader.augment.enabled=false"]


def _damage_first_frame(src: str, dst: str, cfg) -> tuple[str, str]:
    """Copy the training shard set and overwrite the start of the target JPEG of the first sample the run reads
    (epoch 0, batch 0) in place: same size, so the tar and its index stay consistent, only the image inside is
    broken. Returns (tar url, key)."""
    shutil.copytree(src, dst)
    shards = open_shard_set(dst, kind="train")
    plan, _ = build_train_loader(dst, cfg.loader).epoch_plan(0, 0)
    entry = shards.samples[int(plan.sample_ids_M[0])]
    offset, size = entry.components["tgt.jpg"]
    tar = shards.tar_urls[entry.shard]
    with open(tar, "r+b") as f:
        f.seek(offset)
        f.write(b"\0" * min(size, 64))
    return tar, entry.key


def test_a_damaged_frame_is_skipped_named_and_counted(shard_sets, tmp_path, capsys):
    data = {**shard_sets, "train": str(tmp_path / "train")}
    cfg = small_config(data, *RUN)
    tar, key = _damage_first_frame(shard_sets["train"], data["train"], cfg)
    run = str(tmp_path / "run")
    res = fit(cfg, LocalRuntime(run), loaders=build_loaders, run_name="bad", tensorboard_dir=str(tmp_path / "tb"))
    assert res.position.step == 6  # completed: 2 epochs x 3 steps
    log = capsys.readouterr().out
    named = [line for line in log.splitlines() if "skipped a damaged training sample" in line]
    assert len(named) == 1 and tar in named[0] and key in named[0]
    latest = LocalRuntime(run).checkpoint_urls()[-1]
    assert ck.read_identity(latest)["metrics"]["bad_samples"] == 1
    assert ck.read_history(latest)["bad_samples"] == [named[0].split(": ", 1)[1]]

    strict = small_config(data, *RUN, "loader.max_bad_samples=0")
    with pytest.raises(RuntimeError, match=f"more than loader.max_bad_samples=0 .*{os.path.basename(tar)}: sample '{key}'"):
        fit(strict, LocalRuntime(str(tmp_path / "strict")), loaders=build_loaders, run_name="strict",
            tensorboard_dir=str(tmp_path / "tb2"))


def test_a_damaged_validation_frame_is_left_out_and_counted(shard_sets, tmp_path, capsys):
    """A val frame with a zeroed JPEG: every validation leaves it out (one line naming tar and key), scores the
    others and reports the count in the checkpoint metrics (`val_skipped`); past loader.max_bad_samples the run stops
    naming the shard."""
    data = {**shard_sets, "val": str(tmp_path / "val")}
    ((tar, entry),) = damaged_copy(shard_sets["val"], data["val"], kind="eval", samples=(2,))
    run = ["train.epochs=1", "train.max_steps_per_epoch=2", "train.val_every_steps=2", "loader.augment.enabled=false"]
    res = fit(small_config(data, *run), LocalRuntime(str(tmp_path / "run")), loaders=build_loaders, run_name="v",
              tensorboard_dir=str(tmp_path / "tb"))
    clean = open_shard_set(shard_sets["val"], kind="eval")
    assert [(m["val_skipped"], m["val_images"]) for m in res.val_history] == [(1.0, len(clean.samples) - 1)]
    named = [line for line in capsys.readouterr().err.splitlines() if "skipped a damaged frame" in line]
    assert len(named) == 1 and tar in named[0] and entry.key in named[0]
    latest = LocalRuntime(str(tmp_path / "run")).checkpoint_urls()[-1]
    assert ck.read_identity(latest)["metrics"]["val_skipped"] == 1.0

    with pytest.raises(TooManyBadFramesError, match=f"max_bad_frames=0; the last on this rank: {tar}: sample"):
        fit(small_config(data, *run, "loader.max_bad_samples=0"), LocalRuntime(str(tmp_path / "strict")),
            loaders=build_loaders, run_name="strict", tensorboard_dir=str(tmp_path / "tb2"))
