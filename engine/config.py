"""Configs of the training engine: optimisation, the loop, checkpoints and scaling (frozen, keyword-only, validated).

Scaling policy (documented here because every part of the engine follows it):
  * The per-worker batch (`loader.batch_size`) is fixed; the global batch is `batch_size * world_size` and is
    recomputed from the *current* world size every time the training function starts (also after an elastic resize).
  * `optim.lr` is the learning rate at `optim.base_world_size` workers; at W workers it is multiplied by
    W / base_world_size (`lr_scaling="linear"`), sqrt(W / base_world_size) ("sqrt") or 1 ("none").
  * Progress is counted twice: `step` = optimizer steps and `samples_seen` = training samples summed over all
    workers. Warm-up is measured in samples, and learning-rate decay in epochs, so the schedule does not depend on
    the world size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class OptimConfig:
    lr: float = 1e-4
    """Adam learning rate at `base_world_size` workers (RM-Depth / Monodepth2: 1e-4)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam betas."""
    weight_decay: float = 0.0
    """Decoupled weight decay (AdamW); 0 = plain Adam behaviour."""
    warmup_samples: int = 0
    """Linear warm-up from 0 over this many global training samples (0 = none)."""
    decay_epochs: tuple[int, ...] = (15,)
    """Epochs at whose start the learning rate is multiplied by `decay_factor` (Monodepth2: x0.1 at epoch 15)."""
    decay_factor: float = 0.1
    """Multiplier applied at each epoch in `decay_epochs`."""
    grad_clip_norm: float = 0.0
    """Clip the global gradient norm to this value (0 = no clipping)."""
    lr_scaling: Literal["linear", "sqrt", "none"] = "none"
    """How the learning rate follows the world size (see the module docstring)."""
    base_world_size: int = 1
    """World size at which `lr` applies unscaled."""

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas: need two values in [0, 1), got {self.betas}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.warmup_samples < 0:
            raise ValueError(f"optim.warmup_samples must be >= 0, got {self.warmup_samples}")
        if any(e < 0 for e in self.decay_epochs) or list(self.decay_epochs) != sorted(self.decay_epochs):
            raise ValueError(f"optim.decay_epochs must be non-negative and increasing, got {self.decay_epochs}")
        if not 0 < self.decay_factor <= 1:
            raise ValueError(f"optim.decay_factor must be in (0, 1], got {self.decay_factor}")
        if self.grad_clip_norm < 0:
            raise ValueError(f"optim.grad_clip_norm must be >= 0, got {self.grad_clip_norm}")
        if self.lr_scaling not in ("linear", "sqrt", "none"):
            raise ValueError(f"optim.lr_scaling must be linear, sqrt or none, got {self.lr_scaling!r}")
        if self.base_world_size < 1:
            raise ValueError(f"optim.base_world_size must be >= 1, got {self.base_world_size}")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 20
    """Number of passes over the training shard set."""
    max_steps_per_epoch: int = 0
    """Cap on optimizer steps per epoch (0 = the loader's full epoch). Useful for quick runs and tests."""
    seed: int = 0
    """Seed of the initial weights (identical on every rank) and of the torch/numpy/python RNGs (offset by rank);
    the loader's sample order and augmentation follow `loader.seed`."""
    log_every_steps: int = 50
    """TensorBoard scalars and the progress line every this many optimizer steps (rank 0)."""
    image_every_steps: int = 500
    """TensorBoard images (input, depth colour map, motion field, flow) every this many steps (0 = never)."""
    val_every_steps: int = 0
    """Also validate (and checkpoint) every this many steps within an epoch (0 = only at epoch end)."""
    validate: bool = True
    """Validate on `data.val_url` at every epoch end (needs a val shard set)."""
    val_max_batches: int = 0
    """Cap on validation batches per rank (0 = the whole val set)."""
    sync_batchnorm: bool = True
    """Convert BatchNorm layers to SyncBatchNorm when world_size > 1 on GPUs (torch supports it only on CUDA;
    CPU workers keep per-rank BatchNorm statistics)."""
    find_unused_parameters: bool = True
    """Passed to DDP (the object-motion branch is inactive during burn-in)."""
    num_threads: int = 0
    """torch intra-op threads per worker (0 = leave the default; Ray sets OMP_NUM_THREADS to the worker's CPUs).
    On a busy shared CPU, 1 thread per worker is often several times faster than 2."""
    precision: str = "fp32"
    """'fp32'; 'bf16': the networks' convolutions in bfloat16 mixed precision (autocast) while their outputs, the
    geometry, the loss and the weights stay float32 (no loss scaling needed); 'auto': bf16 where the device computes
    it natively (CUDA GPUs with bf16, CPUs with AMX or AVX512-BF16), else fp32. Elsewhere bf16 is emulated and slower.
    The run prints which one it uses."""
    channels_last: bool = False
    """Keep the networks' weights (and so their activations) in channels-last memory layout. On the 2-core CPU
    the convolutions with few output channels (disparity heads, object-motion outputs) run 2-2.5x faster forward
    and backward, the tiny_cpu step 2-10% (BENCHMARKS.md, training step; tiny_cpu uses it); on GPUs it is what
    mixed-precision convolutions prefer. Same numbers up to floating-point summation order (the learning benchmark's
    rigid runs reproduce to the third decimal)."""

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ValueError(f"train.precision must be 'fp32', 'bf16' or 'auto', got {self.precision!r}")
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1, got {self.epochs}")
        for name in ("max_steps_per_epoch", "val_every_steps", "val_max_batches", "image_every_steps", "num_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every_steps < 1:
            raise ValueError(f"train.log_every_steps must be >= 1, got {self.log_every_steps}")


@dataclass(frozen=True, kw_only=True)
class CheckpointConfig:
    every_steps: int = 1000
    """Save a checkpoint every this many optimizer steps (0 = only at epoch end / validation)."""
    keep_top_k: int = 3
    """Keep the k checkpoints with the best `score_metric`, plus always the latest one."""
    score_metric: str = "val_abs_rel"
    """Metric that ranks checkpoints (lower is better). Checkpoints saved without validation score +inf."""

    def __post_init__(self) -> None:
        if self.every_steps < 0:
            raise ValueError(f"checkpoint.every_steps must be >= 0, got {self.every_steps}")
        if self.keep_top_k < 1:
            raise ValueError(f"checkpoint.keep_top_k must be >= 1, got {self.keep_top_k}")
        if not self.score_metric:
            raise ValueError("checkpoint.score_metric must be a metric name")


@dataclass(frozen=True, kw_only=True)
class ScalingConfig:
    num_workers: int = 1
    """Number of training workers (fixed size). Ignored when `min_workers` > 0."""
    min_workers: int = 0
    """Elastic training: lower bound of the worker count (0 = not elastic)."""
    max_workers: int = 0
    """Elastic training: upper bound of the worker count."""
    use_gpu: bool = False
    """One GPU per worker, NCCL; otherwise CPU workers with gloo."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker."""
    max_failures: int = 3
    """Worker-group restarts from the latest checkpoint before the run fails (-1 = unlimited)."""
    resize_check_interval_s: float = 60.0
    """Elastic: how often Ray checks whether the worker group can grow."""

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"scaling.num_workers must be >= 1, got {self.num_workers}")
        if self.min_workers < 0 or (self.min_workers and self.max_workers < self.min_workers):
            raise ValueError(
                f"scaling: need 0 < min_workers <= max_workers for elastic runs, got {self.min_workers}, {self.max_workers}"
            )
        if self.cpus_per_worker <= 0:
            raise ValueError(f"scaling.cpus_per_worker must be positive, got {self.cpus_per_worker}")
        if self.max_failures < -1:
            raise ValueError(f"scaling.max_failures must be >= -1, got {self.max_failures}")
        if self.resize_check_interval_s <= 0:
            raise ValueError("scaling.resize_check_interval_s must be positive")

    @property
    def elastic(self) -> bool:
        return self.min_workers > 0
