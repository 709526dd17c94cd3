"""TOML files -> frozen dataclasses, strictly.

Protocol and training files are read with the standard library's `tomllib` (Python
3.11+, or `tomli` on 3.10) and mapped onto frozen dataclasses field by field. An
unknown key, a value of the wrong type or a missing required section is a
`UsageError` naming the key and the file, never a silent default. Only a regular
UTF-8 file of at most a megabyte is read (not a FIFO or ``/dev/zero``). Depends only on
the standard library, `vla_eval.errors` and `vla_eval.inputs`.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from vla_eval.errors import UsageError

T = TypeVar("T")
MAX_TOML_BYTES = 1024 * 1024  # a protocol is a few kilobytes


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a UsageError."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    from vla_eval.inputs import read_text

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, expected a TOML file")
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{path}: no such file")
    # A regular file of at most MAX_TEXT_BYTES, UTF-8: not /dev/zero, not a FIFO.
    text = read_text(path, str(path), limit=MAX_TOML_BYTES)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path}: not valid TOML: nested too deeply") from None


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    """Check `value` against the annotation `tp`, converting TOML shapes."""

    def bad(expected: str) -> UsageError:
        return UsageError(
            f"{source}: {where} must be {expected}, got {type(value).__name__} {value!r}"
        )

    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise bad(f"one of {_type_name(tp)}")
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        real = [o for o in options if o is not type(None)]
        if len(real) == 1:  # X | None: X's own error is the informative one
            return _convert(value, real[0], where, source)
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, where, source)
            except UsageError:
                pass
        raise bad(" or ".join(_type_name(o) for o in options if o is not type(None)))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad(f"a table [{where}]")
        return from_dict(tp, value, source, prefix=where)
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list):
            raise bad("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]", source) for i, v in enumerate(value))
        if len(args) != len(value):
            raise bad(f"a list of {len(args)} items")
        return tuple(
            _convert(v, a, f"{where}[{i}]", source)
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict or origin is typing.Mapping:
        _, vt = get_args(tp)
        if not isinstance(value, dict):
            raise bad("a table")
        return {str(k): _convert(v, vt, f"{where}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        if isinstance(value, float) and math.isnan(value):
            raise bad("a number (not nan)")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    raise TypeError(f"unsupported field type {tp!r} at {where}")  # a bug in our dataclass


def from_dict(cls: type[T], data: dict[str, Any], source: str, prefix: str = "") -> T:
    """Build the frozen dataclass `cls` from a TOML table, strictly.

    Args:
        cls: the dataclass type; fields without defaults are required.
        data: the parsed table.
        source: the file name, used in every error message.
        prefix: dotted path of this table inside the file ("" at the top).

    Raises:
        UsageError: an unknown key, a wrong type or a missing required key, naming
            the dotted key and the file.
    """
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    dotted = (prefix + ".") if prefix else ""
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise UsageError(f"{source}: unknown key {dotted}{key!s} (known keys: {known})")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], f"{dotted}{name}", source)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise UsageError(f"{source}: missing required key {dotted}{name}")
    try:
        return cls(**kwargs)
    except (ValueError, UsageError) as exc:  # __post_init__ checks of values
        raise UsageError(f"{source}: [{prefix or 'top level'}] {exc}") from None


def to_dict(obj: Any) -> Any:
    """A dataclass back to plain TOML/JSON-able values (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
