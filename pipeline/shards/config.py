"""ShardConfig: everything that determines the content of a shard set (recorded in its summary.json)."""

from __future__ import annotations

from dataclasses import dataclass

DATASETS = ("kitti", "cityscapes")
KINDS = ("train", "eval")
_DEFAULT_GAP = {"kitti": 1, "cityscapes": 2}
_DEFAULT_CROP = {"kitti": 0.0, "cityscapes": 0.25}
_DEFAULT_GT = {"kitti": "velodyne", "cityscapes": "disparity"}


@dataclass(frozen=True, kw_only=True)
class ShardConfig:
    dataset: str
    """kitti (raw drives) or cityscapes (leftImg8bit_sequence)."""
    input: str
    """Dataset root: local path or fsspec URL."""
    kind: str = "train"
    """train: triplet samples; eval: single frames with gt.npy."""
    split: str = ""
    """Name in the shard file names `<dataset>-<split>-%06d.tar`; default train (kind train) or test (kind eval)."""
    source_split: str = ""
    """Cityscapes: the leftImg8bit_sequence/<source_split> folder to read; default = split."""
    cameras: tuple[str, ...] = ("02", "03")
    """KITTI colour cameras to use (02 left, 03 right). Cityscapes has one camera (left)."""
    frame_gap: int = 0
    """Frames between t-g, t and t+g; 0 = dataset default (KITTI 1 at 10 Hz, Cityscapes 2 at 17 Hz)."""
    width: int = 640
    """Stored frame width in pixels."""
    height: int = 192
    """Stored frame height in pixels."""
    jpeg_quality: int = 90
    """JPEG quality of the stored frames (1..100)."""
    samples_per_shard: int = 1000
    """Samples per tar shard (the last shard may hold fewer)."""
    seed: int = 0
    """Seed of the write-time shuffle of samples across shards."""
    split_file: str = ""
    """Optional split file (`<folder> <frame> [l|r]` per line) selecting the target frames."""
    exclude_scenes_file: str = ""
    """Optional list of drive/sequence names to leave out (e.g. SfMLearner's test_scenes_eigen.txt)."""
    min_speed: float = 0.0
    """KITTI: drop targets whose oxts forward speed vf (m/s) is below this (static frames); 0 disables."""
    crop_bottom_frac: float = -1.0
    """Fraction of the image height cropped from the bottom (car hood); -1 = dataset default (Cityscapes 0.25)."""
    gt_source: str = ""
    """Eval GT: velodyne or groundtruth (KITTI proj_depth pngs); disparity (Cityscapes); default per dataset."""
    vel_depth: bool = True
    """KITTI velodyne GT: use the velodyne x (forward) distance as depth like monodepth2 (False: camera z)."""

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        if not self.input:
            raise ValueError("input is required")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        set_ = object.__setattr__  # resolve dataset defaults so summary.json records the values actually used
        if not self.split:
            set_(self, "split", "train" if self.kind == "train" else "test")
        if not self.split.replace("_", "").isalnum():
            raise ValueError(f"split must be letters, digits and underscores (it is part of file names), got {self.split!r}")
        if not self.source_split:
            set_(self, "source_split", self.split)
        set_(self, "cameras", tuple(self.cameras))
        allowed = ("02", "03") if self.dataset == "kitti" else ("left",)
        if self.dataset == "cityscapes" and self.cameras == ("02", "03"):
            set_(self, "cameras", ("left",))
        if not self.cameras or any(c not in allowed for c in self.cameras) or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct values from {allowed}, got {self.cameras}")
        if self.frame_gap == 0:
            set_(self, "frame_gap", _DEFAULT_GAP[self.dataset])
        if self.frame_gap < 1:
            raise ValueError(f"frame_gap must be >= 1, got {self.frame_gap}")
        if self.width < 8 or self.height < 8:
            raise ValueError(f"stored size must be at least 8x8, got {self.width}x{self.height}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.samples_per_shard < 1:
            raise ValueError(f"samples_per_shard must be >= 1, got {self.samples_per_shard}")
        if self.min_speed < 0:
            raise ValueError(f"min_speed must be >= 0, got {self.min_speed}")
        if self.crop_bottom_frac == -1.0:
            set_(self, "crop_bottom_frac", _DEFAULT_CROP[self.dataset])
        if not 0.0 <= self.crop_bottom_frac < 1.0:
            raise ValueError(f"crop_bottom_frac must be in [0, 1), got {self.crop_bottom_frac}")
        if not self.gt_source:
            set_(self, "gt_source", _DEFAULT_GT[self.dataset])
        valid_gt = ("velodyne", "groundtruth") if self.dataset == "kitti" else ("disparity",)
        if self.gt_source not in valid_gt:
            raise ValueError(f"gt_source for {self.dataset} must be one of {', '.join(valid_gt)}, got {self.gt_source!r}")

    @property
    def size_wh(self) -> tuple[int, int]:
        return (self.width, self.height)
