"""Batches handed from a loader (DALI or reference) to the trainer / evaluator.

Shape legend: B batch, S frames in a triplet (index 0 = t-g "prev", 1 = t "tgt", 2 = t+g "next"), C=3 RGB,
H, W network resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True, kw_only=True)
class Batch:
    """A training batch of frame triplets.

    frames_aug_BSCHW: float32 in [0, 1], colour-augmented: the networks' input.
    frames_BSCHW: float32 in [0, 1], same geometric augmentation but no colour augmentation: the images the
        photometric loss compares.
    K_B33: float32 intrinsics valid for (H, W) of the frames after resize/crop/flip (pixel-centre convention of
        `pipeline.schema`).
    keys: sample keys (see `pipeline.schema.make_key`).
    gt_T_BS44: float32 true camera motion target -> frame s (identity at s = 1), mirrored like the frames when they
        were flipped; NaN rows where the shard set has none (schema.Triplet.T_target_to_frames). Not a training
        signal unless loss.velocity_weight > 0; always used for the pose diagnostics.
    """

    frames_aug_BSCHW: torch.Tensor
    frames_BSCHW: torch.Tensor
    K_B33: torch.Tensor
    keys: tuple[str, ...]
    gt_T_BS44: torch.Tensor | None = None
    valid_B: torch.Tensor | None = None
    """Triplet evaluation (pose validation) only: False for padding samples; None = every sample is real."""
    bad_samples: tuple[str, ...] = ()
    """Training: samples of this batch that could not be decoded, as a line naming the tar, the key and what is wrong; their slots
    hold copies of good samples of the batch (LoaderConfig.max_bad_samples)."""

    @property
    def batch_size(self) -> int:
        return int(self.frames_BSCHW.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return replace(
            self,
            frames_aug_BSCHW=self.frames_aug_BSCHW.to(device, non_blocking=non_blocking),
            frames_BSCHW=self.frames_BSCHW.to(device, non_blocking=non_blocking),
            K_B33=self.K_B33.to(device, non_blocking=non_blocking),
            gt_T_BS44=None if self.gt_T_BS44 is None else self.gt_T_BS44.to(device, non_blocking=non_blocking),
        )


@dataclass(frozen=True, kw_only=True)
class SkippedFrame:
    """An evaluation frame that could not be read or decoded: left out of the metrics and reported."""

    shard: str
    """The tar that holds it (URL or path)."""
    key: str
    reason: str
    """What is wrong (the member and the decoder's message)."""

    def as_dict(self) -> dict[str, str]:
        return {"shard": self.shard, "key": self.key, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class EvalBatch:
    """An evaluation batch: target frames at network resolution and ground truth at its own resolution.

    image_B3HW: float32 in [0, 1], no augmentation.
    K_B33: intrinsics for (H, W) of image_B3HW.
    gt_depths: one float32 array per sample, (H_gt, W_gt) in metres, 0 = invalid.
    valid_B: False for padding samples added to equalise batch counts across ranks and for damaged frames; never
        counted in metrics.
    skipped: the damaged frames of this batch (never padding), each reported once across ranks; their slots hold
        placeholders with valid_B False.
    """

    image_B3HW: torch.Tensor
    K_B33: torch.Tensor
    gt_depths: tuple
    keys: tuple[str, ...]
    valid_B: torch.Tensor
    skipped: tuple[SkippedFrame, ...] = ()

    @property
    def batch_size(self) -> int:
        return int(self.image_B3HW.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> EvalBatch:
        return replace(
            self,
            image_B3HW=self.image_B3HW.to(device, non_blocking=non_blocking),
            K_B33=self.K_B33.to(device, non_blocking=non_blocking),
        )
