"""Build frozen dataclasses from plain mappings (YAML/JSON), strictly.

Every config in the project is a frozen dataclass; this is the one function that turns a
mapping into one. Unknown keys and ill-typed values raise ``ConfigError`` naming the key's full
path (``engine.bridge.prefix_tokens``), so a typo fails at start, not an hour into training.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value is unknown, missing or of the wrong type; the message names its path."""


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys take the dataclass defaults."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or '<root>'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = ", ".join(_join(path, k) for k in unknown)
        raise ConfigError(f"unknown config key(s): {where} (known: {', '.join(sorted(fields))})")
    values = {}
    for name, value in data.items():
        values[name] = _convert(hints[name], value, _join(path, name))
    try:
        return cls(**values)
    except TypeError as exc:  # a required field without default is missing
        raise ConfigError(f"{path or '<root>'}: {exc}") from exc


def to_mapping(obj: Any) -> Any:
    """The inverse of ``from_mapping``: plain dicts/lists/strings, ready for JSON or YAML."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path)
    if origin is Literal:
        return _convert_literal(tp, value, path)
    if origin is tuple:
        return _convert_tuple(tp, value, path)
    if origin in (dict, Mapping, typing.Mapping):
        return _convert_mapping(value, path)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, path)  # type: ignore[arg-type]
    return _convert_scalar(tp, value, path)


def _convert_union(tp: Any, value: Any, path: str) -> Any:
    args = get_args(tp)
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(arg, value, path)
        except ConfigError as exc:
            errors.append(str(exc))
    raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} fits none of {tp}")


def _convert_literal(tp: Any, value: Any, path: str) -> Any:
    if value not in get_args(tp):
        allowed = ", ".join(repr(a) for a in get_args(tp))
        raise ConfigError(f"{path}: {value!r} is not one of {allowed}")
    return value


def _convert_mapping(value: Any, path: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
    return dict(value)


def _convert_tuple(tp: Any, value: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
    args = get_args(tp)
    item_type = args[0] if args else Any
    return tuple(_convert(item_type, v, f"{path}[{i}]") for i, v in enumerate(value))


def _convert_scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is Path and isinstance(value, str):
        return Path(value)
    is_bool_as_int = tp is int and isinstance(value, bool)
    if tp in (int, str, bool) and isinstance(value, tp) and not is_bool_as_int:
        return value
    raise ConfigError(f"{path}: expected {getattr(tp, '__name__', tp)}, got {value!r}")
