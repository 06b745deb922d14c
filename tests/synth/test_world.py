"""The street world: sane geometry, the three kinds of moving cars, standstill segments."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.synth import KittiSynthConfig, WorldConfig, write_kitti
from pipeline.synth.world import LANE_EGO, LANE_ONCOMING, LANE_SAME, MAT_CABIN, MAT_CAR, make_world


@pytest.mark.parametrize("seed, turn, speed", [(0, 3.0, 10.0), (1, 6.0, 20.0), (2, 6.0, 3.0)])
def test_camera_never_inside_a_box_and_cars_do_not_overlap(seed, turn, speed):
    world = make_world(WorldConfig(num_moving=9, turn_amplitude_deg=turn, ego_speed=speed), duration=20.0, seed=seed)
    assert np.abs(world.traj_xzyaw_T3[:, 0]).max() < 1.2  # lane weaving within the ego lane
    for t in np.linspace(0.0, 20.0, 41):
        lo, hi = world.boxes_at(t)
        p = world.rig_pose(t)[:3, 3]
        inside = np.all((lo - 1.0 < p) & (p < hi + 1.0), axis=1)
        assert not inside.any(), f"camera within 1 m of a box at t={t}"
        bodies = world.material_N == MAT_CAR
        lo_c, hi_c = lo[bodies], hi[bodies]
        overlap = np.all((lo_c[:, None] < hi_c[None]) & (lo_c[None] < hi_c[:, None]), axis=-1)
        np.fill_diagonal(overlap, False)
        assert not overlap.any(), f"cars overlap at t={t}"


def test_moving_cars_of_every_kind():
    world = make_world(WorldConfig(num_moving=5, ego_speed=10.0), duration=10.0, seed=4)
    cars = world.material_N == MAT_CAR
    x = 0.5 * (world.lo_N3[cars, 0] + world.hi_N3[cars, 0])
    v = world.speed_N[cars]
    ahead = np.isclose(x, LANE_EGO) & (v > 0)
    assert ahead.sum() == 1 and v[ahead][0] > 10.0 * 1.1  # pulls away from the ego car: no collision
    assert (np.isclose(x, LANE_SAME) & (v > 0)).sum() == 2
    assert (np.isclose(x, LANE_ONCOMING) & (v < 0)).sum() == 2
    assert (v == 0).sum() > 5  # parked
    cabins = world.material_N == MAT_CABIN
    assert cabins.sum() == cars.sum()
    assert np.array_equal(world.speed_N[cabins], world.speed_N[cars])  # a cabin moves with its body


def test_stop_fraction_gives_static_frames(tmp_path):
    cfg = KittiSynthConfig(num_drives=1, num_frames=30, size_wh=(32, 16), stereo=False, velodyne=False,
                           truth=False, world=WorldConfig(stop_fraction=0.3))
    write_kitti(str(tmp_path), cfg, progress=False)
    oxts = tmp_path / "2011_09_26" / "2011_09_26_drive_0001_sync" / "oxts" / "data"
    vf = np.array([float((oxts / f"{k:010d}.txt").read_text().split()[8]) for k in range(30)])
    assert vf[14] < 0.01 and vf[15] < 0.01
    assert vf[0] > 8.0 and vf[-1] > 8.0
    assert (vf < 0.01).sum() >= 5
