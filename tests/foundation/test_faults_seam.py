"""The one test-only fault seam (pipeline/faults.py): off by default, fires where and as often as the spec says."""

from __future__ import annotations

import pytest

from pipeline import faults


def test_unset_is_a_no_op(monkeypatch):
    monkeypatch.delenv(faults.ENV, raising=False)
    assert faults.armed_fault() is None and not faults.armed("after_shard", index=0)
    faults.inject("train_step", index=3)  # nothing happens


def test_fires_at_the_index_and_rank_once_per_marker(monkeypatch, tmp_path):
    marker = tmp_path / "m"
    monkeypatch.setenv(faults.ENV, f"point=train_step,at=5,rank=1,action=raise,marker={marker}")
    assert not faults.armed("train_step", index=4, rank=1)
    assert not faults.armed("train_step", index=5, rank=0)
    assert not faults.armed("after_shard", index=5, rank=1)
    with pytest.raises(RuntimeError, match="injected failure at train_step 5 on rank 1"):
        faults.inject("train_step", index=5, rank=1)
    assert marker.exists()
    faults.inject("train_step", index=5, rank=1)  # the marker exists: a restarted run goes on


@pytest.mark.parametrize("spec", ["at=3", "point=nowhere", "point=train_step,action=explode", "point=x=y,at=z",
                                  "point=after_shard,color=red"])
def test_malformed_specs_are_one_clear_error(monkeypatch, spec):
    monkeypatch.setenv(faults.ENV, spec)
    with pytest.raises(ValueError, match=faults.ENV):
        faults.armed_fault()
