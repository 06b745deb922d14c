"""Encode one record into the components of a shard sample (pure Python + PIL + NumPy).

Shape legend: H height, W width.
"""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from pipeline import storage
from pipeline.intrinsics import resize_K
from pipeline.schema import EvalFrame, Triplet, TripletMeta


class DecodeError(ValueError):
    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class EvalMeta:
    """`meta.json` of an evaluation sample (single frame + gt.npy)."""

    key: str
    dataset: str
    split: str
    sequence: str
    camera: str
    frame_id: int
    source: str
    orig_size_wh: tuple[int, int]  # source image size before the bottom crop
    crop_bottom: int
    stored_size_wh: tuple[int, int]
    gt_size_wh: tuple[int, int]
    gt_source: str  # velodyne | groundtruth | disparity
    vel_depth: bool | None  # KITTI velodyne GT only: depth = velodyne x (True) or camera z (False)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> EvalMeta:
        d = json.loads(data)
        for k in ("orig_size_wh", "stored_size_wh", "gt_size_wh"):
            d[k] = tuple(d[k])
        return cls(**d)


def decode_frame(url: str, *, size_wh: tuple[int, int], crop_bottom: int) -> Image.Image:
    """Decode a source image, check its size against the calibration, crop `crop_bottom` rows. RGB PIL image."""
    try:
        data = storage.read_bytes(url)
    except (OSError, FileNotFoundError) as e:
        raise DecodeError(url, f"cannot read ({e})") from e
    if not data:
        raise DecodeError(url, "empty file (0 bytes)")
    try:
        opened = Image.open(io.BytesIO(data))
        opened.load()
        im = opened.convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise DecodeError(url, f"corrupt or truncated image ({e})") from e
    expected = (size_wh[0], size_wh[1] + crop_bottom)
    if im.size != expected:
        raise DecodeError(url, f"image is {im.size[0]}x{im.size[1]}, calibration says {expected[0]}x{expected[1]}")
    if crop_bottom:
        im = im.crop((0, 0, size_wh[0], size_wh[1]))
    return im


def encode_jpeg(im: Image.Image, *, size_wh: tuple[int, int], quality: int) -> bytes:
    if im.size != tuple(size_wh):
        im = im.resize((size_wh[0], size_wh[1]), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def stored_K(K_33, src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> np.ndarray:
    """float32 3x3 intrinsics of the stored frames (K of the cropped source, resized)."""
    return resize_K(np.asarray(K_33, dtype=np.float64), src_wh, dst_wh).astype(np.float32)


class FrameCache:
    """Encoded JPEG bytes by source URL (a frame is shared by up to three triplets)."""

    default_capacity = 2048

    def __init__(self, capacity: int | None = None):
        self.capacity = self.default_capacity if capacity is None else capacity
        self._d: OrderedDict[str, bytes] = OrderedDict()

    def get(self, url: str, *, size_wh, crop_bottom: int, stored_wh, quality: int) -> bytes:
        if url in self._d:
            self._d.move_to_end(url)
            return self._d[url]
        data = encode_jpeg(decode_frame(url, size_wh=size_wh, crop_bottom=crop_bottom), size_wh=stored_wh, quality=quality)
        if self.capacity > 0:
            self._d[url] = data
            if len(self._d) > self.capacity:
                self._d.popitem(last=False)
        return data


def encode_triplet(t: Triplet, *, stored_wh: tuple[int, int], quality: int, cache: FrameCache) -> tuple[list, dict]:
    """-> ([(component, bytes)], manifest row without the shard column). Raises DecodeError."""
    jpgs = [cache.get(f.path, size_wh=t.size_wh, crop_bottom=t.crop_bottom, stored_wh=stored_wh, quality=quality)
            for f in t.frames]
    K_33 = stored_K(t.K_33, t.size_wh, stored_wh)
    orig_wh = (t.size_wh[0], t.size_wh[1] + t.crop_bottom)
    meta = TripletMeta(
        key=t.key, dataset=t.dataset, split=t.split, sequence=t.sequence, camera=t.camera,
        frame_ids=(t.frames[0].index, t.frames[1].index, t.frames[2].index),
        sources=(t.frames[0].path, t.frames[1].path, t.frames[2].path),
        orig_size_wh=orig_wh, stored_size_wh=(stored_wh[0], stored_wh[1]), T_target_to_frames=t.T_target_to_frames,
    )
    components = [("prev.jpg", jpgs[0]), ("tgt.jpg", jpgs[1]), ("next.jpg", jpgs[2]),
                  ("k.f32", K_33.astype("<f4").tobytes()), ("meta.json", meta.to_json())]
    row = _row(key=t.key, t=t, frame_ids=[f.index for f in t.frames], frame=t.frames[1].index, K_33=K_33,
               orig_wh=orig_wh, stored_wh=stored_wh, gt_wh=(0, 0), source=t.frames[1].path, gt_source="")
    row["T_target_to_frames"] = list(t.T_target_to_frames) if t.T_target_to_frames else None
    return components, row


def encode_eval(f: EvalFrame, *, stored_wh: tuple[int, int], quality: int, gt_HW: np.ndarray) -> tuple[list, dict]:
    im = decode_frame(f.frame.path, size_wh=f.size_wh, crop_bottom=f.crop_bottom)
    jpg = encode_jpeg(im, size_wh=stored_wh, quality=quality)
    K_33 = stored_K(f.K_33, f.size_wh, stored_wh)
    orig_wh = (f.size_wh[0], f.size_wh[1] + f.crop_bottom)
    gt_wh = (int(gt_HW.shape[1]), int(gt_HW.shape[0]))
    vel_depth = f.extra.get("vel_depth") if f.gt_source == "velodyne" else None
    meta = EvalMeta(
        key=f.key, dataset=f.dataset, split=f.split, sequence=f.sequence, camera=f.camera, frame_id=f.frame.index,
        source=f.frame.path, orig_size_wh=orig_wh, crop_bottom=f.crop_bottom, stored_size_wh=(stored_wh[0], stored_wh[1]),
        gt_size_wh=gt_wh, gt_source=f.gt_source, vel_depth=vel_depth,
    )
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(gt_HW, dtype=np.float32), allow_pickle=False)
    components = [("tgt.jpg", jpg), ("k.f32", K_33.astype("<f4").tobytes()), ("meta.json", meta.to_json()),
                  ("gt.npy", buf.getvalue())]
    row = _row(key=f.key, t=f, frame_ids=[f.frame.index], frame=f.frame.index, K_33=K_33, orig_wh=orig_wh,
               stored_wh=stored_wh, gt_wh=gt_wh, source=f.frame.path, gt_source=f.gt_source)
    return components, row


def _row(*, key, t, frame_ids, frame, K_33, orig_wh, stored_wh, gt_wh, source, gt_source) -> dict:
    return {
        "key": key, "dataset": t.dataset, "split": t.split, "sequence": t.sequence, "camera": t.camera,
        "frame_ids": list(frame_ids), "frame": int(frame), "k": [float(v) for v in K_33.reshape(-1)],
        "fx": float(K_33[0, 0]), "fy": float(K_33[1, 1]), "cx": float(K_33[0, 2]), "cy": float(K_33[1, 2]),
        "orig_w": int(orig_wh[0]), "orig_h": int(orig_wh[1]), "crop_bottom": int(t.crop_bottom),
        "stored_w": int(stored_wh[0]), "stored_h": int(stored_wh[1]), "gt_w": int(gt_wh[0]), "gt_h": int(gt_wh[1]),
        "gt_source": gt_source, "source": source,
    }
