"""The data contract between stages: typed records and the on-disk shard format.

Shape legend: B batch, S frames in a triplet (3: prev, tgt, next), C channels, H height, W width.

Shard format (WebDataset tar, one sample per triplet; member name = `<key>.<component>`):
  prev.jpg, tgt.jpg, next.jpg  RGB JPEG frames t-g, t, t+g at the stored resolution
  k.f32                        9 little-endian float32: 3x3 intrinsics (row-major) for the stored resolution
  meta.json                    TripletMeta as JSON
Eval shard format (one sample per test frame):
  tgt.jpg, k.f32, meta.json    as above (meta: pipeline.shards.encode.EvalMeta)
  gt.npy                       float32 HxW ground-truth depth in metres at the GT's own resolution, 0 = invalid

Keys contain no dots (WebDataset splits a member name at the first dot of its basename); see `make_key`.

Pixel convention (everywhere in this project): pixel (u, v) has its centre at integer coordinates, the
top-left pixel's centre is (0, 0), u grows right, v grows down (OpenCV / KITTI P_rect convention).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

FRAME_COMPONENTS = ("prev.jpg", "tgt.jpg", "next.jpg")
INTRINSICS_COMPONENT = "k.f32"
META_COMPONENT = "meta.json"
GT_COMPONENT = "gt.npy"

_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-/]")


def make_key(*parts: str | int) -> str:
    """Join parts into a WebDataset sample key with no dots or slashes (safe for WebDataset and DALI)."""
    text = "_".join(str(p) for p in parts)
    return _KEY_BAD.sub("-", text.replace("/", "_"))


@dataclass(frozen=True, kw_only=True)
class FrameRef:
    """One source frame: where it is (local path or fsspec URL) and its index in its sequence."""

    path: str
    index: int


@dataclass(frozen=True, kw_only=True)
class Triplet:
    """A training sample before encoding: frames (t-g, t, t+g) of one sequence and camera.

    `K_33` and `size_wh` describe the source frames *after* any dataset-specific crop (`crop_bottom` rows are
    removed from the bottom of each decoded source image, e.g. the Cityscapes car hood).
    """

    dataset: str
    split: str
    sequence: str
    camera: str
    frames: tuple[FrameRef, FrameRef, FrameRef]
    K_33: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
    size_wh: tuple[int, int]
    crop_bottom: int = 0
    T_target_to_frames: tuple[float, ...] | None = None
    """True camera motion target -> each frame (prev, tgt, next) as 3 row-major 4x4 matrices (48 floats, the middle
    one the identity): T maps points of the target camera frame into that frame's camera (the convention of
    model.geometry). From KITTI oxts + calibration (pykitti) or a synthetic world's truth; None when unknown."""

    @property
    def key(self) -> str:
        return make_key(self.dataset, self.sequence, self.camera, f"{self.frames[1].index:010d}")


@dataclass(frozen=True, kw_only=True)
class EvalFrame:
    """A test frame with the information needed to build its ground truth."""

    dataset: str
    split: str
    sequence: str
    camera: str
    frame: FrameRef
    K_33: tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
    size_wh: tuple[int, int]
    crop_bottom: int = 0
    gt_source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return make_key(self.dataset, self.sequence, self.camera, f"{self.frame.index:010d}")


@dataclass(frozen=True, kw_only=True)
class TripletMeta:
    """`meta.json` of a training sample."""

    key: str
    dataset: str
    split: str
    sequence: str
    camera: str
    frame_ids: tuple[int, int, int]
    sources: tuple[str, str, str]
    orig_size_wh: tuple[int, int]
    stored_size_wh: tuple[int, int]
    T_target_to_frames: tuple[float, ...] | None = None
    """See Triplet.T_target_to_frames (absent in shard sets written before it existed)."""

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> TripletMeta:
        d = json.loads(data)
        return cls(
            key=d["key"],
            dataset=d["dataset"],
            split=d["split"],
            sequence=d["sequence"],
            camera=d["camera"],
            frame_ids=tuple(d["frame_ids"]),
            sources=tuple(d["sources"]),
            orig_size_wh=tuple(d["orig_size_wh"]),
            stored_size_wh=tuple(d["stored_size_wh"]),
            T_target_to_frames=tuple(d["T_target_to_frames"]) if d.get("T_target_to_frames") else None,
        )


# ---------------------------------------------------------------------------------------------------------------
# Shard set layout at DST (local dir or s3:// prefix), written by `rmdepth shard`:
#   <dataset>-<split>-%06d.tar   the shards       (visible only when complete)
#   <dataset>-<split>-%06d.idx   DALI index of each tar, built from the exact bytes uploaded
#   manifest.parquet             one row per sample
#   errors.parquet               every skipped input with file and reason (may have 0 rows)
#   summary.json                 ShardSetSummary; written LAST: its presence marks the set complete
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = "manifest.parquet"
ERRORS_FILE = "errors.parquet"


@dataclass(frozen=True, kw_only=True)
class ShardInfo:
    name: str  # file name of the tar, e.g. kitti-train-000003.tar
    index_name: str  # file name of its DALI .idx
    num_samples: int
    sha256: str
    num_bytes: int


@dataclass(frozen=True, kw_only=True)
class ShardSetSummary:
    """summary.json of a complete shard set."""

    dataset: str
    split: str
    kind: str  # "train" (triplets) or "eval" (single frames with gt.npy)
    num_samples: int
    stored_size_wh: tuple[int, int]
    shards: tuple[ShardInfo, ...]
    num_errors: int
    config: dict[str, Any]  # resolved preprocessing config
    code_version: str
    created_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ShardSetSummary:
        d = json.loads(text)
        d["stored_size_wh"] = tuple(d["stored_size_wh"])
        d["shards"] = tuple(ShardInfo(**s) for s in d["shards"])
        return cls(**d)
