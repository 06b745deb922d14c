"""Records shared by the dataset sources."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class SkippedInput:
    """An input left out of a shard set: which file, why, and at which stage (one row of errors.parquet)."""

    file: str
    reason: str
    stage: str  # "discover", "calib", "enumerate", "split", "decode", "gt"
    sequence: str = ""
    key: str = ""


@dataclass(kw_only=True)
class Listing:
    """What a source found: the records to encode, the inputs it skipped, and counts of deliberate filters."""

    records: list = field(default_factory=list)
    skipped: list[SkippedInput] = field(default_factory=list)
    filtered: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.filtered[name] = self.filtered.get(name, 0) + n
