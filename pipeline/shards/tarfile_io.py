"""Deterministic WebDataset tar files and their DALI index (built from the exact bytes written)."""

from __future__ import annotations

import io
import os
import tarfile

import wds2idx  # DALI's index tool (the `wds2idx` console script), installed with nvidia-dali

TAR_MTIME = 1_600_000_000  # fixed member mtime: identical inputs give byte-identical shards


def write_tar(path: str, samples: list[tuple[str, list[tuple[str, bytes]]]]) -> None:
    """Write samples (key, [(component, bytes)]) to a tar at `path`; members `<key>.<component>`, adjacent per key."""
    with open(path, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, components in samples:
            assert "." not in key, key
            for component, data in components:
                info = tarfile.TarInfo(f"{key}.{component}")
                info.size = len(data)
                info.mtime = TAR_MTIME
                info.mode = 0o444
                info.uname = info.gname = "rmdepth"
                tar.addfile(info, io.BytesIO(data))


def write_index(tar_path: str, idx_path: str) -> None:
    """DALI webdataset index (`v1.2 <n>` + one line per sample) of the tar as written."""
    with wds2idx.IndexCreator(os.path.abspath(tar_path), os.path.abspath(idx_path), verbose=False) as creator:
        creator.create_index()


def index_num_samples(idx_text: str) -> int:
    head = idx_text.split("\n", 1)[0].split()
    if len(head) != 2 or not head[1].isdigit():
        raise ValueError(f"not a DALI webdataset index header: {head!r}")
    return int(head[1])
