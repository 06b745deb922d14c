from __future__ import annotations

import pytest

from tests.loader.fixture_shards import write_shard_set


@pytest.fixture(scope="session")
def train_set(tmp_path_factory):
    return write_shard_set(str(tmp_path_factory.mktemp("train")), kind="train", num_samples=24, per_shard=7)


@pytest.fixture(scope="session")
def eval_set(tmp_path_factory):
    return write_shard_set(str(tmp_path_factory.mktemp("eval")), kind="eval", num_samples=11, per_shard=4)


@pytest.fixture(scope="session")
def same_set(tmp_path_factory):
    return write_shard_set(str(tmp_path_factory.mktemp("same")), frames="same", num_samples=8, per_shard=8)


@pytest.fixture(scope="session")
def dot_set(tmp_path_factory):
    return write_shard_set(str(tmp_path_factory.mktemp("dot")), frames="dot", num_samples=16, per_shard=8)
