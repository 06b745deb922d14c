"""The one place that connects to or starts Ray for the jobs (and stops what it started)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def ray_session(*, num_cpus: int | None = None, address: str | None = None, log_to_driver: bool = False,
                **init_kwargs: Any) -> Iterator[None]:
    """Use the Ray this process is already connected to; else connect to `address` / $RAY_ADDRESS (e.g. under
    `ray job submit`); else start a local cluster with `num_cpus` CPUs for the duration of the block. Whatever this
    call started or connected is shut down when the block ends, also when it ends with an exception."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": log_to_driver, "configure_logging": False}
    if address is None:
        kwargs.update(num_cpus=num_cpus, include_dashboard=False,
                      _temp_dir=tempfile.mkdtemp(prefix="rmdepth-ray-", dir="/tmp"))
    ray.init(**{**kwargs, **init_kwargs})
    try:
        yield
    finally:
        ray.shutdown()
