"""The small runtime interface the training loop sees: who am I, where do I compute, how do I report.

`jobs/train.py` builds a `DistributedRuntime` from Ray Train's context (its `report` calls `ray.train.report`, its
`latest_checkpoint` opens `ray.train.get_checkpoint()`); pytest uses `LocalRuntime`, a single process that keeps
checkpoints in a local (or fsspec URL) run directory with the same retention policy as the Ray run
(top-k by score plus the latest). Nothing here imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from engine.checkpoint import LocalCheckpointStore


def fast_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 convolutions natively: a CUDA GPU with bf16 support, or a CPU with AMX or
    AVX512-BF16 units (elsewhere bf16 is emulated and slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return False


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """train.precision -> the autocast dtype of the networks (None = float32); 'auto' = bf16 where it is native."""
    if precision == "bf16" or (precision == "auto" and fast_bf16(device)):
        return torch.bfloat16
    return None


class Runtime:
    """Base runtime: rank/world size/device plus collectives that are no-ops on one process."""

    def __init__(self, *, rank: int = 0, world_size: int = 1, local_rank: int = 0, device: torch.device | str = "cpu"):
        if not 0 <= rank < world_size:
            raise ValueError(f"runtime: rank {rank} outside world size {world_size}")
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device = torch.device(device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives (identity on one process) ----------------------------------------------------------------
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over ranks (returns a new tensor on the same device)."""
        return tensor.clone()

    def all_gather_object(self, obj: Any) -> list[Any]:
        return [obj]

    def wrap_model(self, module: nn.Module, *, find_unused_parameters: bool = True) -> nn.Module:
        return module

    # -- reporting ----------------------------------------------------------------------------------------------
    def report(self, metrics: dict[str, float], *, checkpoint_dir: str | None, checkpoint_name: str) -> None:
        """Report metrics with a checkpoint. Every rank calls it equally often; only rank 0 passes a directory."""
        raise NotImplementedError

    @contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        """A local directory holding the latest committed checkpoint of this run, or None."""
        raise NotImplementedError
        yield None  # pragma: no cover


class DistributedRuntime(Runtime):
    """A rank of a torch.distributed process group (initialised by the launcher, e.g. Ray Train).

    `report_fn(metrics, checkpoint_dir | None, checkpoint_name)` and `checkpoint_fn() -> contextmanager(dir|None)`
    are provided by the launcher.
    """

    def __init__(
        self,
        *,
        rank: int,
        world_size: int,
        local_rank: int,
        device: torch.device | str,
        report_fn: Callable[[dict[str, float], str | None, str], None],
        checkpoint_fn: Callable[[], Any],
    ):
        super().__init__(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
        self._report_fn = report_fn
        self._checkpoint_fn = checkpoint_fn

    @property
    def _distributed(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        if self._distributed:
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self._distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def wrap_model(self, module: nn.Module, *, find_unused_parameters: bool = True) -> nn.Module:
        if not self._distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=find_unused_parameters
        )

    def report(self, metrics: dict[str, float], *, checkpoint_dir: str | None, checkpoint_name: str) -> None:
        self._report_fn(metrics, checkpoint_dir if self.is_main else None, checkpoint_name)

    @contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        with self._checkpoint_fn() as d:
            yield d


class LocalRuntime(Runtime):
    """One process, no Ray: checkpoints go to a LocalCheckpointStore at `run_url` (local path or URL), kept by the
    same policy as a Ray run. Used by tests (resume equivalence) and by anyone who wants the loop without a cluster.
    """

    def __init__(
        self,
        run_url: str,
        *,
        device: torch.device | str = "cpu",
        keep_top_k: int = 3,
        score_metric: str = "val_abs_rel",
    ):
        super().__init__(rank=0, world_size=1, local_rank=0, device=device)
        self.run_url = run_url
        self.store = LocalCheckpointStore(run_url, keep_top_k=keep_top_k, score_metric=score_metric)
        self.history: list[dict[str, float]] = []

    def report(self, metrics: dict[str, float], *, checkpoint_dir: str | None, checkpoint_name: str) -> None:
        self.history.append(dict(metrics))
        if checkpoint_dir is not None:
            self.store.commit(checkpoint_dir, checkpoint_name, metrics)

    def checkpoint_urls(self) -> list[str]:
        """URLs of the kept checkpoints, in reporting order."""
        return self.store.urls()

    def best_checkpoint_url(self) -> str | None:
        return self.store.best_url()

    @contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        with self.store.latest() as directory:
            yield directory
