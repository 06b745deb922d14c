"""Split files in the standard text format: one target per line, `<folder> <frame> [l|r]`.

KITTI (monodepth2 / Zhou et al. lists): `2011_09_26/2011_09_26_drive_0002_sync 0000000069 l`.
Cityscapes (this project): `<city>/<city>_<seq>` or `<city>_<seq>`, then the frame number, no side.
Scene lists (SfMLearner `test_scenes_eigen.txt`): one drive name per line, e.g. `2011_09_26_drive_0117`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import storage

SIDE_TO_CAMERA = {"l": "02", "r": "03"}


@dataclass(frozen=True, kw_only=True)
class SplitEntry:
    folder: str  # e.g. 2011_09_26/2011_09_26_drive_0002_sync
    frame: int
    side: str  # "l", "r" or "" (no side given)
    line: int  # 1-based line number in the split file


def parse_split_text(text: str, *, source: str) -> list[SplitEntry]:
    entries = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise ValueError(f"{source}:{n}: expected `<folder> <frame> [l|r]`, got {raw!r}")
        try:
            frame = int(parts[1])
        except ValueError:
            raise ValueError(f"{source}:{n}: frame {parts[1]!r} is not an integer") from None
        side = parts[2] if len(parts) == 3 else ""
        if side and side not in SIDE_TO_CAMERA:
            raise ValueError(f"{source}:{n}: side must be l or r, got {side!r}")
        entries.append(SplitEntry(folder=parts[0].strip("/"), frame=frame, side=side, line=n))
    if not entries:
        raise ValueError(f"{source}: split file has no entries")
    return entries


def read_split_file(url: str) -> list[SplitEntry]:
    if not storage.exists(url):
        raise FileNotFoundError(f"{url}: split file not found")
    return parse_split_text(storage.read_text(url), source=url)


def read_scene_list(url: str) -> frozenset[str]:
    """Drive/sequence names, one per line (a `_sync` suffix and a `<date>/` prefix are ignored)."""
    if not storage.exists(url):
        raise FileNotFoundError(f"{url}: scene list not found")
    names = set()
    for raw in storage.read_text(url).splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            names.add(normalize_scene(line.split()[0]))
    return frozenset(names)


def normalize_scene(name: str) -> str:
    name = name.strip("/").rsplit("/", 1)[-1]
    return name[: -len("_sync")] if name.endswith("_sync") else name
