"""Writing the synthetic trees: local paths directly, URLs through pipeline.storage."""

from __future__ import annotations

import os

from pipeline import storage


class TreeWriter:
    """Writes files relative to a root (local path or fsspec URL)."""

    def __init__(self, root: str):
        self.root = root
        self.remote = storage.is_remote(root)
        self.num_files = 0
        self.num_bytes = 0

    def path(self, rel: str) -> str:
        return storage.join(self.root, *rel.split("/"))

    def write(self, rel: str, data: bytes) -> None:
        self.num_files += 1
        self.num_bytes += len(data)
        if self.remote:
            storage.write_bytes(self.path(rel), data)
            return
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-synth"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def write_text(self, rel: str, text: str) -> None:
        self.write(rel, text.encode("utf-8"))

    def remove(self, rel: str) -> None:
        storage.remove(self.path(rel))


def run_jobs(fn, jobs: list[tuple], *, workers: int, on_frame=None, on_job=None) -> list:
    """fn(*job) for each job, in this process (fn gets `on_frame`, called per rendered frame) or, with workers > 1,
    in that many spawned processes (`on_job(result)` is called as each finishes). Results in job order."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job, on_frame=on_frame) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")  # no fork: safe next to threads (Ray, BLAS, fsspec)
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        for fut in as_completed(futures):
            if on_job is not None:
                on_job(fut.result())
        return [fut.result() for fut in futures]
