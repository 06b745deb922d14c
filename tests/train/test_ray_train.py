"""Acceptance: Ray Train with 2 CPU workers (gloo DDP) on synthetic shards, checkpoints on a moto S3 server.

One run covers: training, distributed validation, checkpoints on S3, a worker killed with SIGKILL mid-epoch (a crash,
not a raised exception: test-only fault seam RMDEPTH_FAULT, max_failures=1) restarting from the last checkpoint with
the same total number of optimizer steps as an uninterrupted run; then the driver is started again with the same run
name and resumes.
"""

from __future__ import annotations

import os

import pytest

from pipeline import storage
from tests.train.conftest import small_config

pytestmark = [pytest.mark.ray, pytest.mark.s3, pytest.mark.slow]

STEPS_PER_EPOCH = 4
RUN = ["train.max_steps_per_epoch=4", "checkpoint.every_steps=3", "checkpoint.keep_top_k=2", "scaling.num_workers=2",
       "scaling.max_failures=1", "scaling.cpus_per_worker=1", "train.val_max_batches=0"]


def test_two_workers_s3_failure_and_driver_restart(ray_local, s3_bucket, shard_sets, tmp_path):
    from engine.checkpoint import load_inference_model, read_identity
    from jobs.train import train

    storage_path = f"{s3_bucket}/runs"
    cfg = small_config(shard_sets, *RUN, "train.epochs=2")
    # rank 1's process is SIGKILLed once right after step 7 (epoch 1, mid-epoch); the latest checkpoint is at step 6
    os.environ["RMDEPTH_FAULT"] = f"point=train_step,at=7,rank=1,action=kill,marker={tmp_path / 'fault'}"
    try:
        res = train(cfg, storage_path=storage_path, run_name="acc", tensorboard_dir=str(tmp_path / "tb"))
    finally:
        os.environ.pop("RMDEPTH_FAULT")
    assert (tmp_path / "fault").exists(), "the injected failure did not happen"
    assert res.final_step == 2 * STEPS_PER_EPOCH  # same number of optimizer steps as an uninterrupted run
    steps = [r["step"] for r in res.history]
    assert steps == list(range(1, 2 * STEPS_PER_EPOCH + 1)), steps  # history continues from the restart point
    assert res.run_url == f"{storage_path}/acc"
    names = storage.listdir(res.run_url)
    ckpts = sorted(n for n in names if n.startswith("checkpoint_e"))
    # top-2 by val AbsRel (both epoch ends) + the latest; the periodic step-3/6 ones (unscored) were dropped
    assert ckpts == ["checkpoint_e001_s000000004", "checkpoint_e002_s000000008"], names
    assert any(n.startswith("tensorboard") for n in names)
    # validation ran on the whole val set, split over the two ranks (8 images, each once)
    assert [m["step"] for m in res.metrics] == [4, 8]
    assert all(m["val_images"] == 8 for m in res.metrics)
    assert res.best_checkpoint_url in {f"{res.run_url}/{c}" for c in ckpts}
    ident = read_identity(res.latest_checkpoint_url)
    assert ident["world_size"] == 2 and ident["step"] == 8 and ident["global_batch"] == 4
    net, cfg_loaded, _ = load_inference_model(res.best_checkpoint_url)
    assert cfg_loaded.data == cfg.data and not net.training

    # driver restart: the same run name resumes from the latest checkpoint (here: one more epoch)
    cfg3 = small_config(shard_sets, *RUN, "train.epochs=3")
    res2 = train(cfg3, storage_path=storage_path, run_name="acc", tensorboard_dir=str(tmp_path / "tb"))
    assert res2.final_step == 3 * STEPS_PER_EPOCH
    assert [r["step"] for r in res2.history] == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    assert [m["step"] for m in res2.metrics] == [4, 8, 12]
