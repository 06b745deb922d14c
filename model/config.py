"""Configs of the depth network, the motion network and the training loss (frozen, keyword-only, validated)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Norm = Literal["batch", "group", "none"]


def _check_norm(name: str, value: str) -> None:
    if value not in ("batch", "group", "none"):
        raise ValueError(f"{name}: norm must be 'batch', 'group' or 'none', got {value!r}")


@dataclass(frozen=True, kw_only=True)
class DepthNetConfig:
    encoder_channels: tuple[int, int, int, int, int, int] = (32, 32, 64, 96, 128, 192)
    """Widths of the encoder pyramid levels L1..L6 (L_l at 1/2^(l-1) resolution; LiteFlowNet NetC, spec 1.3)."""
    init_channels: int = 120
    """Width of the h0 initialisation path (conv on L6, residual-upsampled to L5, fused with E5; spec eq. 6).
    120 (spec 1.5 suggests 128) brings the default net to 2.957M parameters, 0.4% under the paper's 2.97M."""
    rmu_steps: tuple[int, int, int] = (9, 2, 2)
    """Recurrent steps of the RMUs at L4, L3, L2 (paper final model: 9, 2, 2; Supp. Table 7)."""
    use_modulation: bool = True
    """RMU modulation phase (eq. 4a); False = the "w/o modulation" ablation, F' = tanh(conv(F))."""
    use_rmu: bool = True
    """False = conventional fusion (eq. 3): concat + conv instead of the recurrent modulation unit."""
    use_residual_upsampling: bool = True
    """Two transposed-conv filter sets (low/high frequency, eq. 10); False = one filter set."""
    norm: Norm = "batch"
    """Normalisation after the encoder and decoder conv blocks (not inside the RMU, whose tanh/sigmoid bound it).
    BatchNorm: on a synthetic KITTI world (208x64, batch 4, Adam 2e-4, 150 steps, same seed) 'batch' reached
    median-scaled abs_rel 0.40 (from 0.59) while 'none' diverged (abs_rel 6.8, 11% of pixels at min depth);
    learning-notes saw the same collapse without normalisation. 'group' avoids batch statistics (no SyncBN needed)
    and trained like 'batch' on the single-triplet overfit test. Eval at batch 1 uses the running statistics."""
    min_depth: float = 0.1
    max_depth: float = 100.0

    def __post_init__(self) -> None:
        if len(self.encoder_channels) != 6 or any(c <= 0 for c in self.encoder_channels):
            raise ValueError(f"depth.encoder_channels: need 6 positive widths, got {self.encoder_channels}")
        if self.init_channels <= 0:
            raise ValueError(f"depth.init_channels must be positive, got {self.init_channels}")
        if len(self.rmu_steps) != 3 or any(k < 1 for k in self.rmu_steps):
            raise ValueError(f"depth.rmu_steps: need 3 step counts >= 1 (L4, L3, L2), got {self.rmu_steps}")
        _check_norm("depth.norm", self.norm)
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f"depth: need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")


@dataclass(frozen=True, kw_only=True)
class MotionNetConfig:
    encoder_channels: tuple[int, int, int] = (32, 64, 96)
    """Widths of the shared motion encoder levels 1..3 (at 1/2, 1/4, 1/8 of the input resolution)."""
    pose_channels: int = 128
    """Width of the three stride-2 convs of the pose decoder."""
    motion_channels: int = 64
    """Width of the object-motion decoder convs at each level."""
    use_warping: bool = True
    """Coarse-to-fine by re-warping the source before each level (Fig. 4); False = one encoder pass."""
    use_object_motion: bool = True
    """Predict a per-pixel 3D object translation field; False = camera motion only."""
    norm: Norm = "none"
    """Normalisation in the motion encoder (off by default: the pose scale 0.01 already keeps outputs small)."""
    pose_scale: float = 0.01
    """Scale of the pose decoder output (Monodepth2)."""

    def __post_init__(self) -> None:
        if len(self.encoder_channels) != 3 or any(c <= 0 for c in self.encoder_channels):
            raise ValueError(f"motion.encoder_channels: need 3 positive widths, got {self.encoder_channels}")
        if self.pose_channels <= 0 or self.motion_channels <= 0:
            raise ValueError("motion.pose_channels and motion.motion_channels must be positive")
        _check_norm("motion.norm", self.norm)
        if self.pose_scale <= 0:
            raise ValueError(f"motion.pose_scale must be positive, got {self.pose_scale}")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    ssim_weight: float = 0.85
    """Weight of the SSIM term in the photometric error (1 - weight goes to L1)."""
    smoothness_weight: float = 1e-3
    """Edge-aware smoothness on mean-normalised disparity, divided by 2^scale."""
    num_scales: int = 4
    """Disparity scales in the loss (1..4; scale 0 = full resolution)."""
    use_automask: bool = True
    """Monodepth2 auto-masking with the unwarped sources (+1e-5 noise)."""
    use_min_reprojection: bool = True
    """Per-pixel minimum over the sources; False = mean."""
    motion_regularizer: Literal["outlier_aware", "li_sparsity", "none"] = "outlier_aware"
    """Regulariser of the object motion field: RM-Depth's outlier-aware loss (spec 3.4) or Li et al.'s (3.3)."""
    motion_reg_weight: float = 0.2
    """Weight of the outlier-aware regulariser."""
    li_smoothness_weight: float = 1.0
    """Weight of Li et al.'s sparsity+smoothness regulariser (when motion_regularizer='li_sparsity')."""
    motion_burnin_start: int = 10_000
    """Steps during which the object motion field is zeroed (Li et al.)."""
    motion_burnin_end: int = 20_000
    """Step at which the linear ramp of the object motion field reaches 1."""
    outlier_sigma: float = 1.0
    """Outlier threshold of the rigid reprojection error: mean + sigma * std (eq. 12)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ssim_weight <= 1.0:
            raise ValueError(f"loss.ssim_weight must be in [0, 1], got {self.ssim_weight}")
        if self.smoothness_weight < 0 or self.motion_reg_weight < 0 or self.li_smoothness_weight < 0:
            raise ValueError("loss weights must be >= 0")
        if not 1 <= self.num_scales <= 4:
            raise ValueError(f"loss.num_scales must be in 1..4, got {self.num_scales}")
        if self.motion_regularizer not in ("outlier_aware", "li_sparsity", "none"):
            raise ValueError(
                f"loss.motion_regularizer must be outlier_aware, li_sparsity or none, got {self.motion_regularizer!r}"
            )
        if not 0 <= self.motion_burnin_start <= self.motion_burnin_end:
            raise ValueError(
                "loss: need 0 <= motion_burnin_start <= motion_burnin_end, got "
                f"{self.motion_burnin_start}, {self.motion_burnin_end}"
            )

    def motion_scale(self, step: int) -> float:
        """Multiplier of the object motion field at `step`: 0 during burn-in, then a linear ramp to 1."""
        if step < self.motion_burnin_start:
            return 0.0
        if step >= self.motion_burnin_end:
            return 1.0
        return (step - self.motion_burnin_start) / max(1, self.motion_burnin_end - self.motion_burnin_start)
