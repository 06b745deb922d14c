"""Test-only fault injection: the one seam through which the crash and restart tests make a run fail.

`RMDEPTH_FAULT="point=NAME[,at=N][,rank=R][,action=kill|exit|raise][,marker=PATH]"` arms one fault; unset (every
normal run) each `inject`/`armed` call is one environment lookup and returns. The fault fires at the named point when
the caller's `index` equals `at` (the shard number, the optimizer step; any index when `at` is not given) on rank
`rank` (default any), at most once per `marker` file (created when it fires, so a restarted run goes on; it names
the process that failed and its parent).
  kill   SIGKILL this process (a crash: nothing is cleaned up)     exit   os._exit(17)     raise   RuntimeError
Points: after_shard, before_tar, mid_tar (half of the tar written under its final name, then kill), before_summary
(pipeline/shards), train_step (engine/trainer.py, after the optimizer step `at`).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

ENV = "RMDEPTH_FAULT"
POINTS = ("after_shard", "before_tar", "mid_tar", "before_summary", "train_step")
ACTIONS = ("kill", "exit", "raise")


@dataclass(frozen=True, kw_only=True)
class Fault:
    point: str
    at: int | None = None
    rank: int | None = None
    action: str = "kill"
    marker: str = ""


def armed_fault() -> Fault | None:
    """The fault armed by the environment, or None; a malformed spec is a ValueError naming it."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    try:
        kv = dict(item.split("=", 1) for item in text.split(","))
        fault = Fault(point=kv.pop("point"), at=int(kv.pop("at")) if "at" in kv else None,
                      rank=int(kv.pop("rank")) if "rank" in kv else None, action=kv.pop("action", "kill"),
                      marker=kv.pop("marker", ""))
    except (KeyError, ValueError) as e:
        raise ValueError(f"{ENV}={text!r}: expected point=NAME[,at=N][,rank=R][,action=...][,marker=PATH]") from e
    if kv or fault.point not in POINTS or fault.action not in ACTIONS:
        raise ValueError(f"{ENV}={text!r}: points {', '.join(POINTS)}; actions {', '.join(ACTIONS)}")
    return fault


def armed(point: str, *, index: int | None = None, rank: int = 0) -> bool:
    """True (once) when the armed fault fires here; the caller then simulates the failure itself."""
    fault = armed_fault()
    if fault is None or fault.point != point:
        return False
    if (fault.at is not None and index != fault.at) or (fault.rank is not None and rank != fault.rank):
        return False
    if fault.marker:
        if os.path.exists(fault.marker):
            return False
        with open(fault.marker, "w") as f:
            # the pid and its parent (a Ray worker's parent is its node's raylet) say which process and node failed
            f.write(f"{point} fired at {index} on rank {rank} in pid {os.getpid()} (parent {os.getppid()})\n")
    return True


def crash() -> None:
    """SIGKILL this process (what `action=kill` does; mid_tar always crashes after its half-write)."""
    os.kill(os.getpid(), signal.SIGKILL)


def inject(point: str, *, index: int | None = None, rank: int = 0) -> None:
    """Carry out the armed fault's action when it fires here."""
    if not armed(point, index=index, rank=rank):
        return
    action = armed_fault().action  # type: ignore[union-attr]
    print(f"[rmdepth] {ENV}: {action} at {point} {index} on rank {rank}", flush=True)
    if action == "kill":
        crash()
    if action == "exit":
        os._exit(17)
    raise RuntimeError(f"{ENV}: injected failure at {point} {index} on rank {rank}")
