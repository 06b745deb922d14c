"""Pure parts of the loaders: augmentation parameters, intrinsics under ROI-resize/flip, rank plans."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.loader import augment, partition
from pipeline.loader.config import AugmentConfig, LoaderConfig
from tests.loader.fixture_shards import K0, POINT_XYZ, STORED_WH, dot_image


def _dot_centre(img_HW: np.ndarray) -> tuple[float, float]:
    w = np.clip(img_HW - img_HW.max() * 0.5, 0, None)
    y, x = np.mgrid[: img_HW.shape[0], : img_HW.shape[1]]
    return float((w * x).sum() / w.sum()), float((w * y).sum() / w.sum())


@pytest.mark.parametrize(
    "roi,flip",
    [
        ((0, 0, 1, 1), False),
        ((0, 0, 1, 1), True),
        ((0.1, 0.05, 0.8, 0.75), False),
        ((0.2, 0.2, 0.95, 0.9), True),
    ],
)
def test_projected_point_lands_where_the_augmented_image_shows_it(roi, flip):
    img = Image.fromarray(dot_image())
    dst = (96, 40)
    out = augment.resize_roi_flip(img, roi_4=np.array(roi, float), flip=flip, dst_wh=dst)
    K = augment.adjust_K(K0, src_wh=STORED_WH, roi_4=np.array(roi, float), flip=flip, dst_wh=dst)
    X = POINT_XYZ * np.array([-1.0 if flip else 1.0, 1.0, 1.0])  # a flipped image shows the mirrored scene
    p = K @ X
    u, v = _dot_centre(out[..., 0].astype(np.float64))
    assert abs(u - p[0] / p[2]) < 0.1 and abs(v - p[1] / p[2]) < 0.1


def test_params_deterministic_and_world_size_independent():
    cfg = AugmentConfig()
    a = augment.sample_params(cfg, seed=3, epoch=1, sample_ids=[5, 9, 2])
    b = augment.sample_params(cfg, seed=3, epoch=1, sample_ids=[2, 9])
    np.testing.assert_array_equal(a.color_N4[[2, 1]], b.color_N4)
    np.testing.assert_array_equal(a.roi_N4[[2, 1]], b.roi_N4)
    c = augment.sample_params(cfg, seed=3, epoch=2, sample_ids=[5, 9, 2])
    assert not np.array_equal(a.color_N4, c.color_N4) or not np.array_equal(a.roi_N4, c.roi_N4)


def test_params_follow_the_configured_ranges():
    cfg = AugmentConfig(max_scale=1.15)
    p = augment.sample_params(cfg, seed=0, epoch=0, sample_ids=range(4000))
    assert 0.45 < p.flip_N.mean() < 0.55
    ext = p.roi_N4[:, 2] - p.roi_N4[:, 0]
    assert np.all(ext <= 1.0) and np.all(ext >= 1 / 1.15 - 1e-9)
    assert 0.45 < np.mean(ext < 1.0) < 0.55
    assert np.all(p.roi_N4[:, :2] >= 0) and np.all(p.roi_N4[:, 2:] <= 1 + 1e-12)
    on = p.color_N4[:, 0] != 1.0
    assert 0.45 < on.mean() < 0.55
    assert np.all(np.abs(p.color_N4[:, :3] - 1) <= 0.2 + 1e-12) and np.all(
        np.abs(p.color_N4[:, 3]) <= 36 + 1e-9
    )
    off = augment.sample_params(AugmentConfig(enabled=False), seed=0, epoch=0, sample_ids=range(10))
    np.testing.assert_array_equal(off.roi_N4, np.tile([0, 0, 1, 1], (10, 1)))
    assert not off.flip_N.any()


def test_color_twist_identity_and_gray_invariance():
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(augment.color_twist_HWC(img, np.array([1.0, 1.0, 1.0, 0.0])), img)
    gray = np.full((4, 4, 3), 128, np.uint8)  # saturation/hue leave gray alone; contrast pivots at 128
    out = augment.color_twist_HWC(gray, np.array([1.0, 0.7, 0.3, 30.0]))
    assert np.abs(out.astype(int) - 128).max() <= 1


def test_config_validation():
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="loader"):
        LoaderConfig(loader="torch")
    with pytest.raises(ValueError, match="batch_size"):
        LoaderConfig(batch_size=0)


def test_train_plans_disjoint_equal_and_deterministic():
    shard_of_N = np.repeat(np.arange(5), 11)[:53]
    plans = [
        partition.train_plan(shard_of_N, rank=r, world_size=3, batch_size=4, seed=1, epoch=2)
        for r in range(3)
    ]
    assert {p.num_batches for p in plans} == {4}
    ids = np.concatenate([p.sample_ids_M for p in plans])
    assert len(ids) == len(set(ids.tolist())) == 48
    again = partition.train_plan(shard_of_N, rank=1, world_size=3, batch_size=4, seed=1, epoch=2)
    np.testing.assert_array_equal(again.sample_ids_M, plans[1].sample_ids_M)
    other = partition.train_plan(shard_of_N, rank=1, world_size=3, batch_size=4, seed=1, epoch=3)
    assert not np.array_equal(other.sample_ids_M, plans[1].sample_ids_M)
    resumed = plans[1].from_step(3)
    np.testing.assert_array_equal(resumed.sample_ids_M, plans[1].sample_ids_M[12:])
    assert resumed.num_batches == 1
    with pytest.raises(ValueError, match="start_step"):
        plans[1].from_step(5)
    with pytest.raises(ValueError, match="too few"):
        partition.train_plan(shard_of_N, rank=0, world_size=8, batch_size=8, seed=0, epoch=0)


def test_train_order_is_a_block_shuffle():
    shard_of_N = np.repeat(np.arange(4), 12)
    order = partition.train_order(shard_of_N, seed=0, epoch=0, shuffle=True, block=4)
    assert sorted(order.tolist()) == list(range(48))
    runs = partition.segments(shard_of_N[order])
    assert all(stop - start <= 8 for _, start, stop in runs)  # blocks of 4 (two may touch)
    assert len(runs) >= 6
    np.testing.assert_array_equal(
        partition.train_order(shard_of_N, seed=0, epoch=0, shuffle=False, block=4), range(48)
    )


@pytest.mark.parametrize("n,world,bs", [(11, 2, 4), (3, 4, 2), (16, 3, 5), (1, 1, 1)])
def test_eval_plans_cover_every_sample_exactly_once(n, world, bs):
    plans = [partition.eval_plan(n, rank=r, world_size=world, batch_size=bs) for r in range(world)]
    assert len({p.num_batches for p in plans}) == 1
    assert all(len(p.sample_ids_M) == p.num_batches * bs for p in plans)
    valid = np.concatenate([p.sample_ids_M[p.valid_M] for p in plans])
    assert sorted(valid.tolist()) == list(range(n))
