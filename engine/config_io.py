"""Generic helpers for frozen config dataclasses: JSON round trip and `a.b=value` overrides.

Works on any (nested) dataclass whose fields are bool/int/float/str/None, tuples or lists of those, dicts of str
to those, or other dataclasses. Unknown keys are errors (never silently ignored), so a stored config that no longer
matches the code fails loudly.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"to_dict expects a dataclass instance, got {type(cfg).__name__}")
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_json(cls: type[T], text: str) -> T:
    return from_dict(cls, json.loads(text))


def from_dict(cls: type[T], data: dict[str, Any], *, path: str = "") -> T:
    """Build `cls` from a dict, strictly: unknown keys raise ValueError naming the key."""
    if not isinstance(data, dict):
        raise ValueError(f"config {path or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        where = path or cls.__name__
        raise ValueError(f"config {where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{path}.{name}" if path else name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except (ValueError, TypeError) as e:
                errors.append(str(e))
        raise ValueError(f"config {path}: {value!r} matches none of {tp}: {'; '.join(errors)}")
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise ValueError(f"config {path}: {value!r} is not one of {list(args)}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path=path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config {path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, path) for v in value)
        if len(args) != len(value):
            raise ValueError(f"config {path}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, path) for a, v in zip(args, value))
    if origin is list:
        return [_coerce(args[0], v, path) for v in value]
    if origin is dict:
        return {str(k): _coerce(args[1], v, path) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"config {path}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ValueError(f"config {path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config {path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"config {path}: expected a string, got {value!r}")
        return value
    return value


def _parse_scalar(text: str) -> Any:
    """Parse an override value: JSON when it parses (numbers, true/false, null, lists), else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        if "," in text:
            return [_parse_scalar(part) for part in text.split(",")]
        return text


def split_override(item: str) -> tuple[str, str]:
    """`a.b=value` -> ("a.b", "value"); a clear error for anything else."""
    if "=" not in item:
        raise ValueError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=2e-4")
    key, _, raw = item.partition("=")
    return key.strip(), raw


def _override_value(current: Any, raw: str) -> Any:
    """Parse an override's text for a field whose present value (or type's example) is `current`."""
    value = _parse_scalar(raw)
    if isinstance(current, list) and not isinstance(value, list):
        value = [value]
    if isinstance(current, str) and not isinstance(value, str):
        value = raw
    return value


def apply_overrides(cfg: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Apply `a.b.c=value` overrides to a frozen dataclass; returns a new, re-validated config."""
    data = to_dict(cfg)
    for item in overrides:
        key, raw = split_override(item)
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[: i + 1])
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "(not a section)"
                raise ValueError(f"--set {key}: unknown key {where!r}; known here: {known}")
            if i == len(parts) - 1:
                node[part] = _override_value(node[part], raw)
            else:
                node = node[part]
    return from_dict(type(cfg), data)


def build_from_overrides(cls: type[T], overrides: list[str] | tuple[str, ...]) -> T:
    """A flat config dataclass built from `field=value` overrides alone (fields not named keep the class's
    defaults, so defaults resolved in __post_init__ see exactly what was given). Missing required fields and
    unknown keys are errors naming them."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    data: dict[str, Any] = {}
    for item in overrides:
        key, raw = split_override(item)
        if key not in fields:
            raise ValueError(f"--set {key}: unknown key; known: {', '.join(sorted(fields))}")
        data[key] = _override_value(_example(hints[key]), raw)
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"config {cls.__name__}: missing required setting(s) {', '.join(missing)} "
                         f"(e.g. --set {missing[0]}=...)")
    return from_dict(cls, data)


def _example(tp: Any) -> Any:
    """A value standing for type `tp` when parsing an override: "" for strings, [] for sequences."""
    if tp is str:
        return ""
    if typing.get_origin(tp) in (tuple, list):
        return []
    return None
