from __future__ import annotations

import os

import pytest

from tests.eval.helpers import make_checkpoint, make_eval_shards


@pytest.fixture(scope="session")
def eval_shards(tmp_path_factory):
    """A synthetic KITTI eval shard set: 1 drive x 7 frames in shards of 3, 3, 1 (odd count: uneven parts)."""
    return make_eval_shards(str(tmp_path_factory.mktemp("evalshards")), frames=7, drives=1, per_shard=3)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return make_checkpoint(os.path.join(root, "tiny", "checkpoint_e000_s000000100"), step=100, seed=1)
