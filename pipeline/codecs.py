"""Byte encodings shared by every stage: PNG and deterministic npz bytes, file sha256."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import IO

import numpy as np
from PIL import Image


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of an HxWx3 uint8 (RGB) or HxW uint8/uint16 (grey) array."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=3)
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


def sha256_file(path: str) -> str:
    """sha256 hex digest of a local file, read in 1 MiB blocks."""
    with open(path, "rb") as f:
        return sha256_stream(f)


def sha256_stream(f: IO[bytes]) -> str:
    """sha256 hex digest of what is left to read in `f`, read in 1 MiB blocks."""
    h = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
    return h.hexdigest()
