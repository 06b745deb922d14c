from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.config_io import apply_overrides, from_dict, from_json, to_dict, to_json


@dataclass(frozen=True, kw_only=True)
class Inner:
    lr: float = 1e-4
    steps: tuple[int, ...] = (9, 2, 2)
    name: str = "x"

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True, kw_only=True)
class Outer:
    inner: Inner = field(default_factory=Inner)
    use_flag: bool = True
    size_wh: tuple[int, int] = (640, 192)
    url: str | None = None


def test_json_round_trip():
    cfg = Outer(inner=Inner(lr=3e-4, steps=(1, 1, 1)), use_flag=False, url="s3://b/p")
    assert from_json(Outer, to_json(cfg)) == cfg
    assert to_dict(cfg)["inner"]["steps"] == [1, 1, 1]


def test_overrides_are_typed_and_revalidated():
    cfg = apply_overrides(Outer(), ["inner.lr=2e-4", "use_flag=false", "size_wh=208,64", "inner.steps=4,2,2"])
    assert cfg.inner.lr == 2e-4 and cfg.use_flag is False
    assert cfg.size_wh == (208, 64) and cfg.inner.steps == (4, 2, 2)
    with pytest.raises(ValueError, match="lr must be > 0"):
        apply_overrides(Outer(), ["inner.lr=-1"])


def test_unknown_keys_are_errors():
    with pytest.raises(ValueError, match="unknown key 'inner.lrr'"):
        apply_overrides(Outer(), ["inner.lrr=1"])
    with pytest.raises(ValueError, match="unknown key"):
        from_dict(Outer, {"inner": {"lr": 1.0, "bogus": 2}})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        apply_overrides(Outer(), ["inner.lr"])


def test_type_errors_name_the_key():
    with pytest.raises(ValueError, match="use_flag"):
        apply_overrides(Outer(), ["use_flag=maybe"])
    with pytest.raises(ValueError, match="size_wh"):
        apply_overrides(Outer(), ["size_wh=1,2,3"])
