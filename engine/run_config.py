"""RunConfig: one training run = the configs of every component, JSON round-trippable (engine.config_io).

Override any field from the CLI: `rmdepth train --preset tiny_cpu --set optim.lr=2e-4 --set loader.batch_size=4`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import CheckpointConfig, OptimConfig, ScalingConfig, TrainConfig
from model.config import DepthNetConfig, LossConfig, MotionNetConfig
from pipeline.loader.config import LoaderConfig

PROTOCOL_NAMES = ("kitti-eigen", "kitti-eigen-benchmark", "cityscapes")
"""The evaluation protocols (engine.evaluate.PROTOCOLS defines them), for configs and command lines."""
MAX_BAD_FRAMES = 10
"""Damaged frames an evaluation skips (reported in metrics.json) before it stops (`rmdepth eval --max-bad-frames`)."""


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    train_url: str = ""
    """Training shard set (kind train, triplets): local dir or s3:// prefix holding summary.json."""
    val_url: str = ""
    """Validation shard set (kind eval: frames + gt.npy) scored each epoch; '' = no validation."""
    val_protocol: str = "kitti-eigen"
    """Evaluation protocol of the validation (engine.evaluate.PROTOCOLS)."""
    pose_val_url: str = ""
    """Training-kind (triplet) shard set of held-out drives whose true camera motion (KITTI oxts, synthetic truth)
    scores the pose net at every validation: 3-frame ATE, translation direction cosine, length ratio, rotation
    error, spread of the output ('' = no pose validation)."""

    def __post_init__(self) -> None:
        if self.val_protocol not in PROTOCOL_NAMES:
            raise ValueError(f"data.val_protocol must be one of {', '.join(PROTOCOL_NAMES)}, got {self.val_protocol!r}")


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    epochs: int = 0
    """Epochs of a first stage on `data` (e.g. Cityscapes) before the main stage starts from its best checkpoint;
    0 = no pretraining stage."""
    data: DataConfig = field(default_factory=DataConfig)
    """Shard sets of the pretraining stage."""

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"pretrain.epochs must be >= 0, got {self.epochs}")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    name: str = "rmdepth"
    """Default run name (the directory under the storage path); the same name resumes the run."""
    data: DataConfig = field(default_factory=DataConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    """Loader implementation, network input size, per-worker batch size, augmentation (loader.augment)."""
    depth: DepthNetConfig = field(default_factory=DepthNetConfig)
    motion: MotionNetConfig = field(default_factory=MotionNetConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    init_checkpoint: str = ""
    """Initialise both networks (weights only) from this checkpoint (dir or URL) when the run starts fresh; it is
    recorded as the parent checkpoint. Set automatically for the second stage of a pretrain+fine-tune run."""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ :"):
            raise ValueError(f"name {self.name!r}: need a non-empty run name without slashes, colons or spaces")
