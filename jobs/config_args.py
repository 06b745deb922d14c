"""The one configuration idiom of every job: a named preset (or a config stored with an earlier output) plus
`--set KEY=VALUE` overrides, applied in command-line order.

  rmdepth train --preset tiny_cpu --set optim.lr=1e-4
  rmdepth shard --config s3://bucket/shards/kitti-train/summary.json --set input=/data/kitti_raw   # same recipe
  rmdepth eval  --protocol kitti-eigen --set max_depth=50 ...

Convenience flags (`--size 640x192`, `--min-depth 0.1`, ...) are thin aliases: each appends the override it stands
for, so a config's defaults are written once, in its dataclass. What a job resolved is stored with its output
(checkpoint config.json, shard set summary.json "config", evaluation metrics.json "protocol") and can be passed back
with --config.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from jobs.errors import UsageError

T = TypeVar("T")


def add_config_arguments(parser: argparse._ActionsContainer, *, config_help: str, example: str) -> None:
    parser.add_argument("--config", default="", help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config field (repeatable; later ones win), e.g. --set {example}")


class _SetAlias(argparse.Action):
    """A flag that stands for one or more `--set` overrides, appended in command-line order."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, to_overrides: Callable[[str], list[str]],
                 takes_value: bool, **kwargs: Any):
        super().__init__(option_strings, dest="overrides", nargs=None if takes_value else 0,
                         default=argparse.SUPPRESS, **kwargs)
        self.to_overrides = to_overrides

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        items = list(getattr(namespace, "overrides", None) or [])
        try:
            items.extend(self.to_overrides(values if isinstance(values, str) else ""))
        except ValueError as e:
            parser.error(f"{option_string}: {e}")
        namespace.overrides = items


def alias(parser: argparse._ActionsContainer, *flags: str, field: str, value: str | None = None,
          to_overrides: Callable[[str], list[str]] | None = None, stands_for: str = "", help: str = "",
          metavar: str | None = None) -> None:
    """Add `flags` as an alias of `--set field=<its value>` (or of `--set field=value` when `value` is given: a
    switch), or of whatever overrides `to_overrides` returns for its value."""
    if to_overrides is None:
        to_overrides = (lambda _: [f"{field}={value}"]) if value is not None else (lambda v: [f"{field}={v}"])
    shown = stands_for or (f"{field}={value}" if value is not None else f"{field}=...")
    parser.add_argument(*flags, action=_SetAlias, to_overrides=to_overrides, takes_value=value is None,
                        metavar=metavar or (None if value is not None else field.upper()),
                        help=f"{help} (alias of --set {shown})" if help else f"alias of --set {shown}")


def read_config_file(path: str, *, embedded_key: str = "", drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config mapping from a JSON file (local or URL). `embedded_key`: when the file is an output that stores
    its config under that key (summary.json "config", metrics.json "protocol"), take that part; `drop`: keys of
    descriptive text stored beside the settings."""
    from pipeline import storage

    if not storage.exists(path):
        raise UsageError(f"--config {path}: no such file")
    try:
        data = json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"--config {path}: not valid JSON ({e})") from None
    if embedded_key and isinstance(data, dict) and isinstance(data.get(embedded_key), dict):
        data = data[embedded_key]
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a JSON object, got {type(data).__name__}")
    return {k: v for k, v in data.items() if k not in drop}


def resolve_config(cls: type[T], args: argparse.Namespace, *, base: T | None = None, embedded_key: str = "",
                   drop: tuple[str, ...] = ()) -> T:
    """`--config FILE` (else `base`, else nothing but the overrides) with `args.overrides` applied in order."""
    from engine.config_io import apply_overrides, build_from_overrides, from_dict

    overrides = list(args.overrides)
    try:
        if args.config:
            try:
                cfg = from_dict(cls, read_config_file(args.config, embedded_key=embedded_key, drop=drop))
            except (ValueError, TypeError) as e:
                raise UsageError(f"--config {args.config}: {e}") from None
            return apply_overrides(cfg, overrides)
        if base is None:
            return build_from_overrides(cls, overrides)
        return apply_overrides(base, overrides)
    except ValueError as e:
        if isinstance(e, UsageError):
            raise
        raise UsageError(str(e)) from None
