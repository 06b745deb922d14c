"""DALI (CPU backend, device_id=None) and reference loaders on real tar shards: parity, augmentation consistency,
intrinsics against image content, rank partition, resume and eval exactly-once.

Parity bound (documented): with the same parameters the two loaders differ only in JPEG decoding and bilinear
resampling; mean absolute pixel difference < 1/255 (measured ~0.2/255) and max < 12/255 (measured <= 3/255).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil

import numpy as np
import pytest
import torch

from pipeline.batch import Batch, EvalBatch
from pipeline.loader import AugmentConfig, LoaderConfig, build_eval_loader, build_train_loader
from pipeline.loader.augment import sample_params
from pipeline.loader.build import build_triplet_eval_loader
from tests.loader.fixture_shards import POINT_XYZ, STORED_WH, camera_motion, damaged_copy, gt_value

KINDS = ("dali", "reference")
FULL_AUG = AugmentConfig(flip_prob=0.5, color_prob=1.0, scale_crop_prob=1.0, max_scale=1.3)


def _cfg(kind: str, **kw) -> LoaderConfig:
    base = dict(loader=kind, width=96, height=40, batch_size=4, num_threads=1, num_workers=0, device="cpu")
    base.update(kw)
    return LoaderConfig(**base)


def _batches(url, cfg, epoch=0, start_step=0, **kw) -> list[Batch]:
    return list(build_train_loader(url, cfg, **kw).epoch_iterator(epoch, start_step=start_step))


def _cat(batches, name):
    return torch.cat([getattr(b, name) for b in batches])


def _keys(batches):
    return [k for b in batches for k in b.keys]


@pytest.mark.parametrize(
    "aug,size",
    [
        (AugmentConfig(enabled=False), (96, 40)),
        (FULL_AUG, (96, 40)),
        (
            AugmentConfig(),
            STORED_WH,
        ),  # default probabilities at the stored size: DALI skips identity resamples
    ],
    ids=["aug_off", "aug_on", "aug_default_stored_size"],
)
def test_dali_and_reference_agree(train_set, aug, size):
    kw = dict(augment=aug, width=size[0], height=size[1])
    dali = _batches(train_set, _cfg("dali", **kw), epoch=1)
    ref = _batches(train_set, _cfg("reference", **kw), epoch=1)
    assert len(dali) == len(ref) == 6
    assert [b.keys for b in dali] == [b.keys for b in ref]
    for b in dali + ref:
        assert b.frames_BSCHW.shape == b.frames_aug_BSCHW.shape == (4, 3, 3, size[1], size[0])
        assert b.frames_BSCHW.dtype == torch.float32 and b.K_B33.shape == (4, 3, 3)
    assert torch.equal(_cat(dali, "K_B33"), _cat(ref, "K_B33"))
    for name in ("frames_BSCHW", "frames_aug_BSCHW"):
        diff = (_cat(dali, name) - _cat(ref, name)).abs()
        assert diff.mean().item() < 1 / 255 and diff.max().item() < 12 / 255, name
    if not aug.enabled:
        assert torch.equal(_cat(dali, "frames_BSCHW"), _cat(dali, "frames_aug_BSCHW"))
    else:
        assert (_cat(dali, "frames_BSCHW") - _cat(dali, "frames_aug_BSCHW")).abs().mean() > 5 / 255


def test_fixed_flip_and_crop_give_identical_intrinsics(train_set):
    aug = AugmentConfig(flip_prob=1.0, scale_crop_prob=1.0, color_prob=0.0)
    dali = _batches(train_set, _cfg("dali", augment=aug))
    ref = _batches(train_set, _cfg("reference", augment=aug))
    K = _cat(dali, "K_B33")
    assert torch.equal(K, _cat(ref, "K_B33"))
    unflipped = _cat(
        _batches(train_set, _cfg("dali", augment=dataclasses.replace(aug, flip_prob=0.0))), "K_B33"
    )
    torch.testing.assert_close(K[:, 0, 2] + unflipped[:, 0, 2], torch.full((24,), 95.0))  # cx' = W - 1 - cx
    assert torch.equal(K[:, 1:], unflipped[:, 1:]) and torch.equal(K[:, 0, 0], unflipped[:, 0, 0])


@pytest.mark.parametrize("kind", KINDS)
def test_identical_frames_stay_identical(same_set, kind):
    for b in _batches(same_set, _cfg(kind, augment=FULL_AUG)):
        for name in ("frames_BSCHW", "frames_aug_BSCHW"):
            x = getattr(b, name)
            assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


@pytest.mark.parametrize("kind", KINDS)
def test_projected_point_matches_augmented_image(dot_set, kind):
    aug = AugmentConfig(flip_prob=0.5, scale_crop_prob=1.0, max_scale=1.5, color_prob=1.0)
    cfg = _cfg(kind, augment=aug)
    loader = build_train_loader(dot_set, cfg)
    ids = loader.plan(0).sample_ids_M
    flips = sample_params(aug, seed=cfg.seed, epoch=0, sample_ids=ids).flip_N
    assert 0 < flips.sum() < len(flips)
    for j, b in enumerate(loader.epoch_iterator(0)):
        for i in range(b.batch_size):
            img = b.frames_BSCHW[i, 1, 0].double().numpy()
            w = np.clip(img - img.max() * 0.5, 0, None)
            y, x = np.mgrid[: img.shape[0], : img.shape[1]]
            u, v = (w * x).sum() / w.sum(), (w * y).sum() / w.sum()
            X = POINT_XYZ * np.array([-1.0 if flips[j * 4 + i] else 1.0, 1.0, 1.0])
            p = b.K_B33[i].double().numpy() @ X
            assert abs(u - p[0] / p[2]) < 0.15 and abs(v - p[1] / p[2]) < 0.15


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_size", [4, 5])
def test_two_ranks_disjoint_equal_batch_counts(train_set, kind, batch_size):
    cfg = _cfg(kind, batch_size=batch_size, augment=AugmentConfig(enabled=False))
    loaders = [build_train_loader(train_set, cfg, rank=r, world_size=2) for r in range(2)]
    runs = [list(ld.epoch_iterator(3)) for ld in loaders]
    assert (
        loaders[0].num_batches_per_epoch == loaders[1].num_batches_per_epoch == len(runs[0]) == len(runs[1])
    )
    k0, k1 = set(_keys(runs[0])), set(_keys(runs[1]))
    assert not k0 & k1 and len(k0) == len(k1) == len(runs[0]) * batch_size
    if batch_size == 4:  # 24 samples = 2 ranks x 3 batches x 4: the whole set
        assert len(k0 | k1) == 24
    else:
        assert 24 - len(k0 | k1) < 2 * batch_size


@pytest.mark.parametrize("kind", KINDS)
def test_resume_yields_exactly_the_remaining_batches(train_set, kind):
    cfg = _cfg(kind, augment=FULL_AUG)
    full = _batches(train_set, cfg, epoch=2)
    resumed = _batches(train_set, cfg, epoch=2, start_step=4)
    assert [b.keys for b in resumed] == [b.keys for b in full[4:]]
    for a, b in zip(resumed, full[4:]):
        assert torch.equal(a.frames_aug_BSCHW, b.frames_aug_BSCHW) and torch.equal(a.K_B33, b.K_B33)
    assert _batches(train_set, cfg, epoch=2, start_step=6) == []


def test_order_is_deterministic_per_seed_and_epoch(train_set):
    cfg = _cfg("dali")
    assert _keys(_batches(train_set, cfg, epoch=5)) == _keys(_batches(train_set, cfg, epoch=5))
    assert _keys(_batches(train_set, cfg, epoch=5)) != _keys(_batches(train_set, cfg, epoch=6))
    assert sorted(_keys(_batches(train_set, cfg, epoch=6))) == sorted(
        _keys(_batches(train_set, cfg, epoch=5))
    )


def test_reference_workers_match_main_process(train_set):
    a = _batches(train_set, _cfg("reference", augment=FULL_AUG, num_workers=2))
    b = _batches(train_set, _cfg("reference", augment=FULL_AUG, num_workers=0))
    assert [x.keys for x in a] == [x.keys for x in b]
    assert torch.equal(_cat(a, "frames_aug_BSCHW"), _cat(b, "frames_aug_BSCHW"))


@pytest.mark.parametrize("world_size", [1, 2])
def test_eval_every_sample_exactly_once(eval_set, world_size):
    runs = {}
    for kind in KINDS:
        cfg = _cfg(kind)
        loaders = [build_eval_loader(eval_set, cfg, rank=r, world_size=world_size) for r in range(world_size)]
        batches = [list(ld) for ld in loaders]
        assert len({len(b) for b in batches}) == 1
        assert all(len(b) == ld.num_batches_per_epoch for b, ld in zip(batches, loaders))
        flat = [eb for per_rank in batches for eb in per_rank]
        for eb in flat:
            assert isinstance(eb, EvalBatch) and eb.image_B3HW.shape == (4, 3, 40, 96)
            for key, gt in zip(eb.keys, eb.gt_depths):
                assert gt.dtype == np.float32 and gt.ndim == 2 and np.all(gt == gt_value(key))
        valid = [k for eb in flat for k, v in zip(eb.keys, eb.valid_B.tolist()) if v]
        assert sorted(valid) == sorted(set(valid)) and len(valid) == 11
        runs[kind] = flat
    d, r = runs["dali"], runs["reference"]
    assert [b.keys for b in d] == [b.keys for b in r]
    assert all(torch.equal(a.valid_B, b.valid_B) and torch.equal(a.K_B33, b.K_B33) for a, b in zip(d, r))
    diff = (_cat(d, "image_B3HW") - _cat(r, "image_B3HW")).abs()
    assert diff.mean() < 1 / 255 and diff.max() < 12 / 255


def test_incomplete_or_wrong_sets_are_refused(train_set, eval_set, tmp_path):
    partial = str(tmp_path / "partial")
    shutil.copytree(train_set, partial)
    os.remove(os.path.join(partial, "summary.json"))
    with pytest.raises(FileNotFoundError, match="summary.json"):
        build_train_loader(partial, _cfg("dali"))
    with pytest.raises(ValueError, match="'eval' shard set, expected 'train'"):
        build_train_loader(eval_set, _cfg("reference"))
    bad_idx = str(tmp_path / "badidx")
    shutil.copytree(train_set, bad_idx)
    idx = sorted(f for f in os.listdir(bad_idx) if f.endswith(".idx"))[0]
    lines = open(os.path.join(bad_idx, idx)).read().splitlines()
    open(os.path.join(bad_idx, idx), "w").write("\n".join([lines[0]] + lines[2:]) + "\n")
    with pytest.raises(ValueError, match=idx):
        build_train_loader(bad_idx, _cfg("reference"))
    with pytest.raises(ValueError, match="too few"):
        build_train_loader(train_set, _cfg("reference", batch_size=16), rank=0, world_size=2)


def test_auto_picks_dali_and_logs_it(train_set, caplog):
    with caplog.at_level(logging.INFO, logger="pipeline.loader.build"):
        loader = build_train_loader(train_set, dataclasses.replace(_cfg("auto")))
    assert loader.kind == "dali"
    assert "loader: DALI" in caplog.text


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_training_sample_is_skipped_and_named(train_set, tmp_path, kind):
    """Both loaders: the damaged sample's slot holds a good sample of its batch, marked invalid, and the batch names
    the damaged one (tar and key); every other sample is delivered as without the damage."""
    bad = str(tmp_path / "bad")
    tar, entry = damaged_copy(train_set, bad, kind="train", samples=(3,))[0]
    cfg = _cfg(kind, shuffle=False, augment=AugmentConfig(enabled=False))
    got, clean = _batches(bad, cfg), _batches(train_set, cfg)
    assert len(got) == len(clean)
    named = [(i, d) for i, b in enumerate(got) for d in b.bad_samples]
    assert len(named) == 1 and os.path.basename(tar) in named[0][1] and entry.key in named[0][1]
    batch = got[named[0][0]]
    slot = clean[named[0][0]].keys.index(entry.key)
    assert batch.valid_B is not None and not bool(batch.valid_B[slot]) and int(batch.valid_B.sum()) == len(batch.keys) - 1
    assert entry.key not in batch.keys  # its slot holds another sample of the batch
    assert _keys(got) == [k if k != entry.key else batch.keys[slot] for k in _keys(clean)]


def _eval_batches(url: str, kind: str, world_size: int) -> list[EvalBatch]:
    cfg = _cfg(kind, batch_size=2)
    return [b for r in range(world_size) for b in build_eval_loader(url, cfg, rank=r, world_size=world_size)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("members", [("tgt.jpg", "gt.npy"), ("gt.npy", "tgt.jpg")])
def test_damaged_eval_frames_are_skipped_and_reported_once(eval_set, tmp_path, kind, world_size, members):
    """Frame 1 and frame 10 (the last frame of the set, which also fills the padding slot of the last part) with a
    zeroed JPEG or gt.npy: each is left out (valid_B False) and reported once across ranks with its tar, key and
    reason; every other frame is delivered as without the damage."""
    bad = str(tmp_path / "bad")
    (tar1, e1), (tar5, e5) = damaged_copy(eval_set, bad, kind="eval", samples=(1, 10), components=members)
    got, clean = _eval_batches(bad, kind, world_size), _eval_batches(eval_set, kind, world_size)
    skipped = [s for b in got for s in b.skipped]
    assert [(s.shard, s.key) for s in skipped] == [(tar1, e1.key), (tar5, e5.key)]
    reasons = {"tgt.jpg": "tgt.jpg is not a decodable image", "gt.npy": "gt.npy is not a valid .npy file"}
    assert [s.reason[: len(reasons[m])] for s, m in zip(skipped, members)] == [reasons[m] for m in members]
    valid = lambda batches: [k for b in batches for k, v in zip(b.keys, b.valid_B.tolist()) if v]  # noqa: E731
    assert valid(got) == [k for k in valid(clean) if k not in (e1.key, e5.key)]
    assert len(valid(clean)) == 11
    for b, c in zip(got, clean, strict=True):
        for i, ok in enumerate(b.valid_B.tolist()):
            if ok:
                assert b.keys[i] == c.keys[i] and torch.equal(b.image_B3HW[i], c.image_B3HW[i])
                np.testing.assert_array_equal(b.gt_depths[i], c.gt_depths[i])


def _index(key: str) -> int:
    return int(key.rsplit("_", 1)[1])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_batches_carry_the_true_camera_motion_mirrored_with_the_frames(train_set, kind, flip_prob):
    aug = AugmentConfig(flip_prob=flip_prob, color_prob=0.0, scale_crop_prob=0.0)
    batches = _batches(train_set, _cfg(kind, augment=aug))
    mirror = np.diag([-1.0, 1.0, 1.0, 1.0])
    seen_missing = 0
    for b in batches:
        assert b.gt_T_BS44.shape == (4, 3, 4, 4) and b.gt_T_BS44.dtype == torch.float32
        for key, got in zip(b.keys, b.gt_T_BS44.numpy()):
            want = camera_motion(_index(key))
            if want is None:
                assert np.isnan(got).all()
                seen_missing += 1
                continue
            if flip_prob:
                want = mirror @ want @ mirror  # the flipped frames see the mirrored motion: x translation negated
            np.testing.assert_allclose(got, want, atol=1e-6)
    assert seen_missing > 0


@pytest.mark.parametrize("kind", KINDS)
def test_triplet_eval_loader_reads_each_triplet_once_without_augmentation(train_set, kind):
    cfg = _cfg(kind, augment=FULL_AUG, batch_size=5)
    keys, valid = [], []
    for rank in range(2):
        for b in build_triplet_eval_loader(train_set, cfg, rank=rank, world_size=2).epoch_iterator(0):
            assert torch.equal(b.frames_BSCHW, b.frames_aug_BSCHW)  # no colour jitter
            keys += [k for k, v in zip(b.keys, b.valid_B.tolist()) if v]
            valid.append(b.valid_B)
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 24
    assert not torch.cat(valid).all()  # padding exists and is marked
