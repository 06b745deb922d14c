"""Small synthetic trees shared by the synth tests (rendered once per session)."""

from __future__ import annotations

import pytest

from pipeline.synth import CityscapesSynthConfig, KittiSynthConfig, write_cityscapes, write_kitti

KITTI_SIZE = (416, 128)
CS_SIZE = (256, 128)


@pytest.fixture(scope="session")
def kitti_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_kitti")
    cfg = KittiSynthConfig(num_drives=1, num_frames=4, size_wh=KITTI_SIZE, seed=3)
    summary = write_kitti(str(root), cfg, progress=False)
    return root, cfg, summary


@pytest.fixture(scope="session")
def cityscapes_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_cs")
    cfg = CityscapesSynthConfig(split="val", cities=("frankfurt",), num_sequences=1, num_frames=21, size_wh=CS_SIZE,
                                seed=5)
    summary = write_cityscapes(str(root), cfg, progress=False)
    return root, cfg, summary
