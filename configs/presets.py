"""Named runs as Python functions returning a RunConfig; variants via dataclasses.replace or `--set`.

Shard-set URLs are left empty in the cluster presets: pass them with
`--set data.train_url=s3://bucket/shards/kitti-train --set data.val_url=s3://bucket/shards/kitti-val`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from engine.config import CheckpointConfig, OptimConfig, ScalingConfig, TrainConfig
from engine.run_config import DataConfig, PretrainConfig, RunConfig
from model.config import DepthNetConfig, LossConfig, MotionNetConfig
from pipeline.loader.config import AugmentConfig, LoaderConfig


def tiny_cpu() -> RunConfig:
    """Minutes on a 2-core CPU (learning-notes: 208x64 learns within minutes, 416x128 does not): the RM-Depth
    architecture at reduced width (depth encoder 8 channels at full resolution, object-motion levels 16 wide) with
    fewer RMU steps, 208x64 input, batch 4, lr 2e-4 with warm-up, 1400 steps, validation every 50 steps with the
    best checkpoint kept. The object-motion field switches on from 30% of the run and is fully on from half of it
    (burn-in as a fraction of the run). The "nothing below the road" prior is on (a level camera over flat roads:
    the synthetic worlds; last checkpoint 0.106 vs 0.111 AbsRel over 3 seeds). The coarser loss scales are computed
    at their own resolution (loss.scale_resolution="native"); float32, since bfloat16 together with that collapsed
    in 3 of 4 runs. Channels-last weights; the object-motion pass's re-encodings run without gradient into the
    shared motion encoder (motion.field_trains_encoder=False; the field itself stays ~0 in runs this short either
    way). Together 2x faster steps than before issue 14 with the field on, spent on 14 instead of 12 epochs: the
    same wall-clock as the previous recipe, best AbsRel 0.102 vs 0.102 and last 0.103 vs 0.110 over 3 seeds.
    Measured in BENCHMARKS.md (learning, training step)."""
    return RunConfig(
        name="tiny_cpu",
        data=DataConfig(val_protocol="kitti-eigen"),
        loader=LoaderConfig(
            loader="reference", width=208, height=64, batch_size=4, seed=0, num_workers=1, prefetch=2,
            augment=AugmentConfig(scale_crop_prob=0.0),
        ),
        depth=DepthNetConfig(encoder_channels=(8, 16, 32, 48, 64, 96), init_channels=48, rmu_steps=(2, 1, 1), norm="batch"),
        motion=MotionNetConfig(encoder_channels=(16, 32, 48), pose_channels=64, motion_channels=16,
                               field_trains_encoder=False),
        loss=LossConfig(motion_burnin_unit="fraction", motion_burnin_start=0.3, motion_burnin_end=0.5,
                        ground_bound_weight=1.0, scale_resolution="native"),
        optim=OptimConfig(lr=2e-4, warmup_samples=400, decay_epochs=(), lr_scaling="none"),
        train=TrainConfig(
            epochs=14, max_steps_per_epoch=100, seed=0, log_every_steps=20, image_every_steps=100,
            val_every_steps=50, val_max_batches=0, num_threads=1, channels_last=True,
        ),
        checkpoint=CheckpointConfig(every_steps=0, keep_top_k=1),
        scaling=ScalingConfig(num_workers=1, cpus_per_worker=1.0, use_gpu=False, max_failures=1),
    )


def kitti_640x192() -> RunConfig:
    """The paper's main setting: KITTI Eigen-Zhou triplets at 640x192, Adam 1e-4, batch 12, 20 epochs, x0.1 at 15."""
    return RunConfig(
        name="kitti_640x192",
        data=DataConfig(val_protocol="kitti-eigen"),
        loader=LoaderConfig(loader="auto", width=640, height=192, batch_size=12, seed=0, num_workers=4, num_threads=4),
        optim=OptimConfig(lr=1e-4, warmup_samples=0, decay_epochs=(15,), decay_factor=0.1, lr_scaling="sqrt"),
        train=TrainConfig(epochs=20, seed=0, log_every_steps=50, image_every_steps=1000),
        checkpoint=CheckpointConfig(every_steps=2000, keep_top_k=3),
        scaling=ScalingConfig(num_workers=4, use_gpu=True, cpus_per_worker=6.0, max_failures=3),
    )


def cityscapes_640x192() -> RunConfig:
    """Cityscapes sequences (ego-car crop done at sharding) at 640x192; validated with the Cityscapes protocol."""
    base = kitti_640x192()
    return replace(base, name="cityscapes_640x192", data=DataConfig(val_protocol="cityscapes"))


def cs_then_kitti() -> RunConfig:
    """Pretrain on Cityscapes (`pretrain.data`), then fine-tune on KITTI from the pretraining run's best checkpoint
    (RM-Depth: CS+K gives KITTI AbsRel 0.105)."""
    base = kitti_640x192()
    return replace(
        base,
        name="cs_then_kitti",
        pretrain=PretrainConfig(epochs=20, data=DataConfig(val_protocol="cityscapes")),
    )


PRESETS: dict[str, Callable[[], RunConfig]] = {
    "tiny_cpu": tiny_cpu,
    "kitti_640x192": kitti_640x192,
    "cityscapes_640x192": cityscapes_640x192,
    "cs_then_kitti": cs_then_kitti,
}


def list_presets() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()
