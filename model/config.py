"""Configs of the depth network, the motion network and the training loss (frozen, keyword-only, validated)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Norm = Literal["batch", "group", "none"]
DEPTH_ARCHS = ("rmdepth", "resnet18")


def _check_norm(name: str, value: str) -> None:
    if value not in ("batch", "group", "none"):
        raise ValueError(f"{name}: norm must be 'batch', 'group' or 'none', got {value!r}")


@dataclass(frozen=True, kw_only=True)
class DepthNetConfig:
    arch: Literal["rmdepth", "resnet18"] = "rmdepth"
    """`rmdepth`: the paper's net (RMUs, residual upsampling; the fields below). `resnet18`: Monodepth2's ResNet18
    encoder-decoder trained from scratch (model/resnet_depth_net.py; 14.3M parameters; only min/max_depth and
    init_depth apply), the baseline of the paper's size claim, trained by the same pipeline."""
    encoder_channels: tuple[int, int, int, int, int, int] = (8, 16, 32, 48, 224, 320)
    """Widths of the encoder pyramid levels L1..L6 (L_l at 1/2^(l-1) resolution; LiteFlowNet NetC, spec 1.3); the
    RMUs at L4, L3, L2 are as wide as their level. [I] The paper gives 2.97M parameters, not the widths. Compute
    grows with width^2 x pixels, parameters with width^2 only, so the parameters sit at the coarse levels (L5, L6
    and the h0 path: 1/16 and 1/32 of the resolution) and the fine levels, where the RMUs recur 9/2/2 times, stay
    narrow: 5.2 GMACs at 640x192 and 0.6-0.8x the latency of Monodepth2's ResNet18 on a CPU, where the first
    layout (32, 32, 64, 96, 128, 192), h0 120, needed 21.7 GMACs and 2.7x (BENCHMARKS.md, depth network latency)."""
    init_channels: int = 176
    """Width of the h0 initialisation path (conv on L6, residual-upsampled to L5, fused with E5; spec eq. 6).
    176 brings the default net to 2,969,204 parameters (with the full-resolution skip): the paper's 2.97M."""
    rmu_steps: tuple[int, int, int] = (9, 2, 2)
    """Recurrent steps of the RMUs at L4, L3, L2 (paper final model: 9, 2, 2; Supp. Table 7)."""
    use_modulation: bool = True
    """RMU modulation phase (eq. 4a); False = the "w/o modulation" ablation, F' = tanh(conv(F))."""
    use_rmu: bool = True
    """False = conventional fusion (eq. 3): concat + conv instead of the recurrent modulation unit."""
    use_residual_upsampling: bool = True
    """Two transposed-conv filter sets (low/high frequency, eq. 10); False = one filter set."""
    use_full_res_skip: bool = True
    """At full resolution, fuse the upsampled hidden state with the encoder's full-resolution features (E1) in a
    conv block before the disparity head (the long encoder-decoder skip of Fig. 1). [I] Without it the finest
    disparity is a linear function of an upsampled 1/2-resolution state: blurry object boundaries."""
    norm: Norm = "batch"
    """Normalisation after the encoder and decoder conv blocks (not inside the RMU, whose tanh/sigmoid bound it).
    BatchNorm: on a synthetic KITTI world (208x64, batch 4, Adam 2e-4, 150 steps, same seed) 'batch' reached
    median-scaled abs_rel 0.40 (from 0.59) while 'none' diverged (abs_rel 6.8, 11% of pixels at min depth);
    learning-notes saw the same collapse without normalisation. 'group' avoids batch statistics (no SyncBN needed)
    and trained like 'batch' on the single-triplet overfit test. Eval at batch 1 uses the running statistics."""
    min_depth: float = 0.1
    max_depth: float = 100.0
    init_depth: float = 10.0
    """Depth (metres) that the disparity heads output at initialisation, through their bias; 0 = bias 0 (sigmoid
    0.5, i.e. about 2 * min_depth, Monodepth2's start). Together with the pose net's forward-motion prior
    (MotionNetConfig.init_forward_motion) the first warps have the right size for a street scene, so the depth net
    gets a useful signal from the first steps; Monodepth2's start (0.2 m with 0.01-scaled translations) sat on a
    plateau with almost no translation for hundreds of steps on CPU runs (learning-notes.md, BENCHMARKS.md)."""

    def __post_init__(self) -> None:
        if self.arch not in DEPTH_ARCHS:
            raise ValueError(f"depth.arch must be one of {', '.join(DEPTH_ARCHS)}, got {self.arch!r}")
        if self.init_depth and not self.min_depth < self.init_depth < self.max_depth:
            raise ValueError(f"depth.init_depth must be 0 or inside (min_depth, max_depth), got {self.init_depth}")
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
    field_trains_encoder: bool = True
    """The object-motion pass's encoder runs (the re-encodings of the warped pairs) back-propagate into the shared
    encoder, which then learns from the field's loss as well as from the pose's ([I]: the paper trains one shared
    encoder). False = those runs are made without gradient: the same encoder and weights, trained by the pose path
    only, while the field levels still learn; the backward pass skips the three re-encodings (0.88x the
    field-on step of tiny_cpu on a CPU, BENCHMARKS.md). The learning benchmark cannot tell the two apart: its
    field stays ~0 either way."""
    norm: Norm = "batch"
    """Normalisation in the motion encoder and the pose decoder. Without it the ten-conv pose path shrank the input
    signal at every layer and the pose output was a constant (learning-notes.md)."""
    rotation_scale: float = 0.01
    """Multiplier of the pose decoder's axis-angle output (Monodepth2: 0.01)."""
    translation_scale: float = 1.0
    """Multiplier of the pose decoder's translation output, i.e. its unit: 1 = metres at a metric-looking scale
    (depth starts at DepthNetConfig.init_depth, the camera at init_forward_motion). Monodepth2 uses 0.01 with depth
    starting at ~0.2."""
    init_forward_motion: float = 1.0
    """Forward camera motion (metres per frame pair, along +z of the camera) that the pose decoder outputs at
    initialisation, through its translation bias; the input-dependent part starts small (last conv scaled by
    0.1). A prior for cameras on forward-driving cars (KITTI, Cityscapes): without it the initial translation
    points anywhere, and the depth net learns to push the scene far away rather than the pose net to turn round
    (learning-notes.md). 1 m matches KITTI at 10 Hz and Cityscapes at 17 Hz with a frame gap of 2 (~36 km/h).
    0 = no prior (zero bias, default init)."""

    def __post_init__(self) -> None:
        if len(self.encoder_channels) != 3 or any(c <= 0 for c in self.encoder_channels):
            raise ValueError(f"motion.encoder_channels: need 3 positive widths, got {self.encoder_channels}")
        if self.pose_channels <= 0 or self.motion_channels <= 0:
            raise ValueError("motion.pose_channels and motion.motion_channels must be positive")
        _check_norm("motion.norm", self.norm)
        if self.init_forward_motion < 0:
            raise ValueError(f"motion.init_forward_motion must be >= 0, got {self.init_forward_motion}")
        if self.rotation_scale <= 0 or self.translation_scale <= 0:
            raise ValueError("motion.rotation_scale and motion.translation_scale must be positive")


@dataclass(frozen=True, kw_only=True)
class LossConfig:
    ssim_weight: float = 0.85
    """Weight of the SSIM term in the photometric error (1 - weight goes to L1)."""
    smoothness_weight: float = 1e-3
    """Edge-aware smoothness on mean-normalised disparity, divided by 2^scale."""
    num_scales: int = 4
    """Disparity scales in the loss (1..4; scale 0 = full resolution)."""
    scale_resolution: Literal["full", "native"] = "full"
    """Where the coarser scales' photometric loss is computed: "full" upsamples each disparity to the input size
    before warping (Monodepth2); "native" warps images area-downsampled to the disparity's own size with the
    intrinsics scaled to it (SfMLearner, struct2depth), a quarter of the pixels per coarser scale. On the learning
    benchmark (tiny_cpu, float32, 3 seeds) "native" learned as well as "full" at 0.8x the step time; combined with
    bfloat16 mixed precision it collapsed in 3 of 4 runs (BENCHMARKS.md, Learning)."""
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
    motion_burnin_start: float = 10_000
    """Start of the object-motion ramp: the field is zero (and not computed) before it (Li et al.: 10k steps)."""
    motion_burnin_end: float = 20_000
    """End of the linear ramp of the object motion field to 1."""
    motion_burnin_unit: Literal["steps", "fraction"] = "steps"
    """Unit of motion_burnin_start/end: optimizer steps, or fractions of the run's total steps (so a preset's
    burn-in follows its length: 0.3, 0.5 = off for the first 30%, full from half of the run)."""
    mask_out_of_view: bool = True
    """A warp that lands outside the source image gets the maximum photometric error (1) instead of a sample of the
    border, so the per-pixel minimum takes the other source or the identity; otherwise predicting the minimum depth
    in the uniform bottom rows (which warps them far off the image onto similar border pixels) is rewarded."""
    velocity_weight: float = 0.0
    """Weak velocity supervision (PackNet-SfM): weight of |‖t_pred‖ - ‖t_true‖| (metres) where the batch carries
    the camera motion of a triplet (KITTI oxts, synthetic truth). Fixes the metric scale and the early plateau in
    which the pose net predicts almost no translation. 0 = fully self-supervised."""
    ground_bound_weight: float = 0.0
    """Weight of the "nothing below the road" prior (losses.ground_bound_loss) on the full-resolution depth: no pixel
    below the horizon is farther than a flat road would be in its row. Assumes a level camera over locally flat
    roads (driving data); 0 = off."""
    outlier_sigma: float = 1.0
    """Outlier threshold of the rigid reprojection error: mean + sigma * std (eq. 12)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ssim_weight <= 1.0:
            raise ValueError(f"loss.ssim_weight must be in [0, 1], got {self.ssim_weight}")
        if min(self.smoothness_weight, self.motion_reg_weight, self.li_smoothness_weight, self.ground_bound_weight) < 0:
            raise ValueError("loss weights must be >= 0")
        if not 1 <= self.num_scales <= 4:
            raise ValueError(f"loss.num_scales must be in 1..4, got {self.num_scales}")
        if self.scale_resolution not in ("full", "native"):
            raise ValueError(f"loss.scale_resolution must be 'full' or 'native', got {self.scale_resolution!r}")
        if self.motion_regularizer not in ("outlier_aware", "li_sparsity", "none"):
            raise ValueError(
                f"loss.motion_regularizer must be outlier_aware, li_sparsity or none, got {self.motion_regularizer!r}"
            )
        if not 0 <= self.motion_burnin_start <= self.motion_burnin_end:
            raise ValueError(
                "loss: need 0 <= motion_burnin_start <= motion_burnin_end, got "
                f"{self.motion_burnin_start}, {self.motion_burnin_end}"
            )
        if self.motion_burnin_unit not in ("steps", "fraction"):
            raise ValueError(f"loss.motion_burnin_unit must be steps or fraction, got {self.motion_burnin_unit!r}")
        if self.motion_burnin_unit == "fraction" and self.motion_burnin_end > 1:
            raise ValueError(f"loss: burn-in fractions must be <= 1, got end {self.motion_burnin_end}")
        if self.velocity_weight < 0:
            raise ValueError(f"loss.velocity_weight must be >= 0, got {self.velocity_weight}")

    def motion_burnin_steps(self, total_steps: int) -> tuple[float, float]:
        """(start, end) of the burn-in ramp in steps; fractions need the run's `total_steps`."""
        if self.motion_burnin_unit == "steps":
            return self.motion_burnin_start, self.motion_burnin_end
        if total_steps <= 0:
            raise ValueError("loss.motion_burnin_unit=fraction needs the run's total number of steps")
        return self.motion_burnin_start * total_steps, self.motion_burnin_end * total_steps

    def motion_scale(self, step: int, total_steps: int = 0) -> float:
        """Multiplier of the object motion field at `step`: 0 during burn-in, then a linear ramp to 1."""
        start, end = self.motion_burnin_steps(total_steps)
        if step < start:
            return 0.0
        if step >= end:
            return 1.0
        return (step - start) / max(1.0, end - start)
