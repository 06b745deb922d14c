"""Helpers shared by the sources: numbered frame listings and image headers."""

from __future__ import annotations

import io

from PIL import Image

from pipeline import storage
from pipeline.sources.records import Listing, SkippedInput

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def list_numbered(url: str, exts: tuple[str, ...] = IMAGE_EXTS) -> dict[int, str]:
    """{frame index: url} for files named `<digits><ext>` directly under `url` ({} if the folder is missing)."""
    out = {}
    for name in storage.listdir(url):
        stem, dot, ext = name.rpartition(".")
        if dot and stem.isdigit() and "." + ext.lower() in exts:
            out[int(stem)] = storage.join(url, name)
    return out


def note_holes(frames: dict[int, str], *, folder: str, sequence: str, listing: Listing) -> None:
    """Record every missing index inside a sequence's frame range (targets next to it lose a neighbour)."""
    if not frames:
        return
    present = set(frames)
    for i in range(min(present), max(present) + 1):
        if i not in present:
            listing.skipped.append(
                SkippedInput(file=folder, reason=f"frame {i} missing inside the sequence; triplets that need it are skipped",
                             stage="enumerate", sequence=sequence)
            )


def image_size(url: str) -> tuple[int, int]:
    """(W, H) from an image header (reads only the first bytes of a PNG/JPEG)."""
    with storage.open_read(url) as f:
        head = f.read(1 << 16)
    with Image.open(io.BytesIO(head)) as im:
        return im.size
