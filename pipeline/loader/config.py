"""Loader configuration: LoaderConfig (what to read, how fast) and AugmentConfig (training augmentation)."""

from __future__ import annotations

from dataclasses import dataclass, field

LOADERS = ("auto", "dali", "reference")
DEVICES = ("auto", "cpu", "gpu")


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Training augmentation, drawn once per triplet and applied to all three frames (monodepth2 defaults).

    Colour jitter changes only `Batch.frames_aug_BSCHW` (the networks' input); flip and scale-crop change both
    frame sets and the intrinsics.
    """

    enabled: bool = True
    """False: no augmentation at all (plain resize to the training size)."""
    flip_prob: float = 0.5
    """Probability of a horizontal flip."""
    color_prob: float = 0.5
    """Probability that colour jitter is applied (all four factors together, as in monodepth2)."""
    brightness: float = 0.2
    """Brightness factor drawn from [1 - b, 1 + b]."""
    contrast: float = 0.2
    """Contrast factor drawn from [1 - c, 1 + c]."""
    saturation: float = 0.2
    """Saturation factor drawn from [1 - s, 1 + s]."""
    hue: float = 0.1
    """Hue shift drawn from [-h, h] in fractions of a full turn (0.1 = 36 degrees), torchvision's unit."""
    scale_crop_prob: float = 0.5
    """Probability of a random scale-crop: zoom by s in [1, max_scale], crop back to the training size."""
    max_scale: float = 1.15
    """Largest zoom of the scale-crop (DFV uses 1.15)."""

    def __post_init__(self) -> None:
        for name in ("flip_prob", "color_prob", "scale_crop_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"AugmentConfig.{name}={v}: must be in [0, 1]")
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ValueError(f"AugmentConfig.{name}={v}: must be in [0, 1)")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"AugmentConfig.hue={self.hue}: must be in [0, 0.5]")
        if self.max_scale < 1.0:
            raise ValueError(f"AugmentConfig.max_scale={self.max_scale}: must be >= 1")


@dataclass(frozen=True, kw_only=True)
class LoaderConfig:
    """How a shard set becomes batches: which implementation, the training size, batch size and parallelism."""

    loader: str = "auto"
    """dali | reference | auto (DALI where it imports, else the reference loader; the choice is logged)."""
    width: int = 640
    """Network input width in pixels (frames are resized to it)."""
    height: int = 192
    """Network input height in pixels."""
    batch_size: int = 8
    """Samples per batch on each rank."""
    seed: int = 0
    """Seed of the per-epoch sample order and the augmentation parameters."""
    shuffle: bool = True
    """Training: reshuffle the sample order every epoch (deterministically from seed and epoch)."""
    shuffle_block: int = 4
    """Training order = blocks of this many samples of one shard, blocks shuffled across all shards. 1 = a full
    global shuffle; larger blocks mean fewer reader segments (cheaper on object storage)."""
    device: str = "auto"
    """DALI decode device: gpu (device="mixed", nvJPEG), cpu, or auto (gpu when CUDA is available)."""
    num_threads: int = 2
    """DALI CPU threads."""
    prefetch: int = 2
    """DALI prefetch queue depth / reference DataLoader prefetch factor (batches)."""
    num_workers: int = 2
    """Reference loader: DataLoader worker processes (0 = load in the main process)."""
    cache_dir: str = ""
    """For s3:// shard sets: a local directory to download tars + .idx into (reused when sha256 matches).
    Empty: read object storage directly (DALI's S3 client / fsspec)."""
    verify: str = "size"
    """Checks of a shard set when a loader opens it, besides summary.json against the indexes and the manifest:
    "size" (every tar has its summary.json size and holds every byte its index names; one stat/HEAD per tar) or
    "sha256" (also every tar's sha256: reads the whole set once before training). Cached sets are always checked
    by sha256."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Training augmentation (never applied by eval loaders)."""
    max_bad_samples: int = 100
    """Training: samples that cannot be decoded (a damaged JPEG, a truncated member) are skipped (their slot in the
    batch holds a copy of a good sample of the same batch), named with their shard and key in the log and counted
    in the checkpoint metrics (`bad_samples`); a run that meets more distinct bad samples than this stops with an
    error naming the last one. 0: the first bad sample stops the run. In-training validation uses the same budget
    for the damaged frames of the val set (each logged, counted in `val_skipped`, more than this stop the run)."""

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise ValueError(f"LoaderConfig.loader={self.loader!r}: must be one of {', '.join(LOADERS)}")
        if self.verify not in ("size", "sha256"):
            raise ValueError(f"LoaderConfig.verify={self.verify!r}: must be size or sha256")
        if self.device not in DEVICES:
            raise ValueError(f"LoaderConfig.device={self.device!r}: must be one of {', '.join(DEVICES)}")
        for name in ("width", "height", "batch_size", "num_threads", "prefetch", "shuffle_block"):
            if getattr(self, name) < 1:
                raise ValueError(f"LoaderConfig.{name}={getattr(self, name)}: must be >= 1")
        if self.num_workers < 0:
            raise ValueError(f"LoaderConfig.num_workers={self.num_workers}: must be >= 0")
        if self.max_bad_samples < 0:
            raise ValueError(f"LoaderConfig.max_bad_samples={self.max_bad_samples}: must be >= 0")
