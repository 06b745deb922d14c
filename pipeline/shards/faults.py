"""Crash injection for the exactly-once tests: `RMDEPTH_SHARD_FAULT=<point>:<n>` kills this process (SIGKILL) the
n-th time (1-based) it reaches <point>. Points: after_shard (a shard fully uploaded), before_tar (its part record and
.idx are uploaded, the tar not yet), mid_tar (half of the tar bytes written to the destination name, not committed),
before_summary (all shards done, manifest not yet written). Unset in normal runs: a no-op."""

from __future__ import annotations

import os
import signal

ENV = "RMDEPTH_SHARD_FAULT"
POINTS = ("after_shard", "before_tar", "mid_tar", "before_summary")
_hits: dict[str, int] = {}


def armed(point: str) -> bool:
    spec = os.environ.get(ENV, "")
    if not spec:
        return False
    name, _, n = spec.partition(":")
    if name != point:
        return False
    _hits[point] = _hits.get(point, 0) + 1
    return _hits[point] == int(n or 1)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def maybe_crash(point: str) -> None:
    if armed(point):
        kill_self()
