"""Reference loaders: PIL + NumPy in a torch DataLoader, with the same Batch contract and augmentation as DALI.

Shape legend: B batch, S=3 frames, C=3, H, W training size.

Samples are read by byte range from their tar through the shard set's .idx (local files with os.pread, object
storage with ranged GETs through fsspec/s3fs), so this loader follows exactly the same RankPlan as the DALI loader:
same keys in the same batches, same augmentation parameters, same intrinsics math. It serves machines without DALI
and is the oracle of the parity tests.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from pipeline import storage
from pipeline.batch import Batch, EvalBatch, SkippedFrame
from pipeline.loader import augment
from pipeline.loader.core import EvalOrder, LoaderCore, TrainOrder
from pipeline.loader.shardset import SampleEntry, ShardSet, load_npy


class _ByteReader:
    """Reads (tar, offset, size) ranges. Local tars: a small LRU of file descriptors, opened lazily by the process
    that reads (DataLoader workers open their own) and closed when evicted or when the reader is dropped."""

    MAX_OPEN = 32

    def __init__(self, tar_urls: tuple[str, ...]):
        self.tar_urls = tar_urls
        self._pid = os.getpid()
        self._fds: OrderedDict[int, int] = OrderedDict()  # shard -> fd, most recently used last

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # forked: the parent's descriptors are not ours to manage
            self._pid, self._fds = os.getpid(), OrderedDict()
        fd = self._fds.pop(shard, None)
        if fd is None:
            fd = os.open(storage.strip_file_scheme(self.tar_urls[shard]), os.O_RDONLY)
            while len(self._fds) >= self.MAX_OPEN:
                os.close(self._fds.popitem(last=False)[1])
        self._fds[shard] = fd
        return fd

    def read(self, entry: SampleEntry, component: str) -> bytes:
        off, size = entry.components[component]
        url = self.tar_urls[entry.shard]
        if storage.is_remote(url):
            data = storage.read_range(url, off, off + size)
        else:
            data = os.pread(self._fd(entry.shard), size, off)
        if len(data) != size:
            raise ValueError(
                f"{url}: sample {entry.key!r} {component} truncated ({len(data)} of {size} bytes)"
            )
        return data

    def __del__(self):
        if getattr(self, "_pid", None) == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def _decode_rgb(data: bytes, url: str, key: str, component: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        return img.convert("RGB")
    except OSError as e:
        raise ValueError(f"{url}: sample {key!r} {component} is not a decodable image ({e})") from e


def _k33(data: bytes, url: str, key: str) -> np.ndarray:
    if len(data) != 36:
        raise ValueError(f"{url}: sample {key!r} k.f32 has {len(data)} bytes, expected 36 (3x3 float32)")
    return np.frombuffer(data, dtype="<f4").reshape(3, 3).astype(np.float64)


def check_triplet(shard_set: ShardSet, sample_id: int) -> str:
    """"" if training sample `sample_id` reads and decodes, else what is wrong, naming its tar and key (the DALI
    loader's way to find which sample of a failed batch is damaged)."""
    entry = shard_set.samples[sample_id]
    reader = _ByteReader(shard_set.tar_urls)
    url = shard_set.tar_urls[entry.shard]
    try:
        for comp in ("prev.jpg", "tgt.jpg", "next.jpg"):
            _decode_rgb(reader.read(entry, comp), url, entry.key, comp)
        _k33(reader.read(entry, "k.f32"), url, entry.key)
    except ValueError as e:
        return str(e)
    return ""


class _TrainDataset(torch.utils.data.Dataset):
    def __init__(self, entries, tar_urls, params: augment.AugmentParams, dst_wh, motion_NS44: np.ndarray):
        self.entries = entries
        self.reader = _ByteReader(tar_urls)
        self.params = params
        self.dst_wh = dst_wh
        self.motion_NS44 = motion_NS44

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        try:
            return self._item(i)
        except ValueError as err:  # a damaged member (decode or size), named: replaced in _collate_train
            return _BadSample(str(err))

    def _item(self, i: int):
        e = self.entries[i]
        roi, flip, color = self.params.roi_N4[i], bool(self.params.flip_N[i]), self.params.color_N4[i]
        plain, aug = [], []
        src_wh = None
        for comp in ("prev.jpg", "tgt.jpg", "next.jpg"):
            img = _decode_rgb(self.reader.read(e, comp), self.reader.tar_urls[e.shard], e.key, comp)
            if comp == "tgt.jpg":
                src_wh = img.size
            x = augment.resize_roi_flip(img, roi_4=roi, flip=flip, dst_wh=self.dst_wh)
            plain.append(x)
            aug.append(augment.color_twist_HWC(x, color))
        assert src_wh is not None
        k33 = _k33(self.reader.read(e, "k.f32"), self.reader.tar_urls[e.shard], e.key)
        K = augment.adjust_K(k33, src_wh=src_wh, roi_4=roi, flip=flip, dst_wh=self.dst_wh)
        return (
            np.stack(aug).transpose(0, 3, 1, 2),
            np.stack(plain).transpose(0, 3, 1, 2),
            K.astype(np.float32),
            e.key,
            self.motion_NS44[i],
        )


@dataclass(frozen=True)
class _BadSample:
    description: str
    """What is wrong, naming the tar and the key."""


def _collate_train(items) -> Batch:
    bad = tuple(item.description for item in items if isinstance(item, _BadSample))
    good = [item for item in items if not isinstance(item, _BadSample)]
    if not good:
        raise ValueError(f"every sample of a training batch is damaged: {'; '.join(bad)}")
    good_slots = [not isinstance(item, _BadSample) for item in items]
    items = [item if ok else good[i % len(good)] for i, (item, ok) in enumerate(zip(items, good_slots, strict=True))]
    aug, plain, K, keys, motion = zip(*items)
    return Batch(
        frames_aug_BSCHW=torch.from_numpy(np.stack(aug)).float().div_(255.0),
        frames_BSCHW=torch.from_numpy(np.stack(plain)).float().div_(255.0),
        K_B33=torch.from_numpy(np.stack(K)),
        keys=tuple(keys),
        gt_T_BS44=torch.from_numpy(np.stack(motion)),
        valid_B=torch.tensor(good_slots, dtype=torch.bool),  # evaluation never counts a substitute
        bad_samples=bad,
    )


def _eval_frame(reader: _ByteReader, e: SampleEntry, dst_wh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image 3HW uint8 at dst_wh, K 33 float32 for it, gt HgWg float32) of one eval sample; ValueError naming the tar,
    the key and the member when one cannot be decoded."""
    url = reader.tar_urls[e.shard]
    img = _decode_rgb(reader.read(e, "tgt.jpg"), url, e.key, "tgt.jpg")
    whole = np.array([0.0, 0.0, 1.0, 1.0])
    x = augment.resize_roi_flip(img, roi_4=whole, flip=False, dst_wh=dst_wh)
    K = augment.adjust_K(_k33(reader.read(e, "k.f32"), url, e.key), src_wh=img.size, roi_4=whole, flip=False,
                         dst_wh=dst_wh)
    try:
        gt = load_npy(reader.read(e, "gt.npy"), e.key)
    except ValueError as err:
        raise ValueError(f"{url}: {err}") from err
    return x.transpose(2, 0, 1), K.astype(np.float32), gt


def skipped_frame(err: ValueError, url: str, key: str) -> SkippedFrame:
    """The record of a frame whose decoding raised `err` (the tar and key go to their own fields)."""
    reason = str(err)
    for prefix in (f"{url}: ", f"sample {key!r}: ", f"sample {key!r} "):
        reason = reason.removeprefix(prefix)
    return SkippedFrame(shard=url, key=key, reason=reason)


def check_eval_frame(shard_set: ShardSet, sample_id: int) -> SkippedFrame | None:
    """None if eval sample `sample_id` reads and decodes, else its SkippedFrame (the DALI eval loader's way to find
    the damaged frame of a failed batch)."""
    entry = shard_set.samples[sample_id]
    try:
        _eval_frame(_ByteReader(shard_set.tar_urls), entry, (8, 8))
    except ValueError as err:
        return skipped_frame(err, shard_set.tar_urls[entry.shard], entry.key)
    return None


class _EvalDataset(torch.utils.data.Dataset):
    def __init__(self, entries, tar_urls, valid_M, dst_wh):
        self.entries = entries
        self.reader = _ByteReader(tar_urls)
        self.valid_M = valid_M
        self.dst_wh = dst_wh

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int):
        """(image, K, gt, key, valid, SkippedFrame or None); a damaged frame becomes a placeholder, not valid, and
        is reported only where it is a real frame (a padding copy of it is not)."""
        e = self.entries[i]
        try:
            return (*_eval_frame(self.reader, e, self.dst_wh), e.key, bool(self.valid_M[i]), None)
        except ValueError as err:
            skipped = skipped_frame(err, self.reader.tar_urls[e.shard], e.key) if self.valid_M[i] else None
            w, h = self.dst_wh
            placeholder = (np.zeros((3, h, w), np.uint8), np.eye(3, dtype=np.float32), np.zeros((1, 1), np.float32))
            return (*placeholder, e.key, False, skipped)


def _collate_eval(items) -> EvalBatch:
    img, K, gt, keys, valid, skipped = zip(*items)
    return EvalBatch(
        image_B3HW=torch.from_numpy(np.stack(img)).float().div_(255.0),
        K_B33=torch.from_numpy(np.stack(K)),
        gt_depths=tuple(gt),
        keys=tuple(keys),
        valid_B=torch.tensor(valid, dtype=torch.bool),
        skipped=tuple(s for s in skipped if s is not None),
    )


class _ReferenceDecoder(LoaderCore):
    kind = "reference"

    def _loader(self, dataset, collate) -> torch.utils.data.DataLoader:
        workers = self.cfg.num_workers
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            shuffle=False,
            drop_last=False,
            num_workers=workers,
            collate_fn=collate,
            prefetch_factor=self.cfg.prefetch if workers > 0 else None,
        )


class _Triplets(_ReferenceDecoder):
    def epoch_iterator(self, epoch: int = 0, start_step: int = 0) -> Iterator[Batch]:
        plan, params = self.epoch_plan(epoch, start_step)
        entries = self.entries(plan)
        motion = self.shard_set.camera_motion_BS44([e.key for e in entries], params.flip_N)
        ds = _TrainDataset(entries, self.shard_set.tar_urls, params, (self.cfg.width, self.cfg.height), motion)
        B = self.cfg.batch_size
        for step, batch in enumerate(self._loader(ds, _collate_train)):
            planned = torch.from_numpy(plan.valid_M[step * B : (step + 1) * B].copy())
            yield replace(batch, valid_B=planned & batch.valid_B if batch.valid_B is not None else planned)


class ReferenceTrainLoader(_Triplets, TrainOrder):
    """Training batches (augmented) for one rank. See `pipeline.loader` for the API."""


class ReferenceTripletEvalLoader(_Triplets, EvalOrder):
    """Triplets without augmentation, every sample exactly once across ranks (Batch.valid_B): pose validation."""


class ReferenceEvalLoader(_ReferenceDecoder, EvalOrder):
    """Evaluation batches for one rank: every sample of the set exactly once across ranks (valid_B)."""

    def epoch_iterator(self, epoch: int = 0, start_step: int = 0) -> Iterator[EvalBatch]:
        plan, _ = self.epoch_plan(epoch, start_step)
        ds = _EvalDataset(self.entries(plan), self.shard_set.tar_urls, plan.valid_M, (self.cfg.width, self.cfg.height))
        yield from self._loader(ds, _collate_eval)
