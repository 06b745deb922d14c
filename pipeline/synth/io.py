"""Writing the synthetic trees: local paths directly, URLs through pipeline.storage; PNG and npz encoding."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
from PIL import Image

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


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of an HxWx3 uint8 (RGB) or HxW uint16 (16-bit grey) array."""
    buf = io.BytesIO()
    if array.dtype == np.uint16:
        img = Image.fromarray(array.astype(np.uint16))
    else:
        img = Image.fromarray(array)
    img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def npz_bytes(**arrays) -> bytes:
    """A compressed .npz (np.load reads it) with fixed zip timestamps, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


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
