"""Strict JSON results: every file and `--json` output goes through here.

Results are strict JSON (`allow_nan=False`), with one rule for numbers JSON cannot
hold: an undefined value (`None`) is written as `null`, and a measured non-finite
float (a diverged loss, an infinite temperature) as the string ``"nan"``, ``"inf"``
or ``"-inf"``, so it stays visible instead of reading as "not measured". Files are
written atomically (`atomic_write`: temporary file, fsync, rename). Each result
carries a `schema` name and a provenance block (command line, package versions,
seeds, timestamp). This module imports only the standard library; numpy values are
converted by duck typing so `vla-eval wilson` stays light.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from vla_eval import __version__


def finite_or_text(value: float) -> float | str:
    """The one non-finite rule: a finite float as is, else ``"nan"``, ``"inf"``, ``"-inf"``.

    >>> finite_or_text(0.5), finite_or_text(float("nan")), finite_or_text(-float("inf"))
    (0.5, 'nan', '-inf')
    """
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def to_jsonable(value: Any) -> Any:
    """Convert `value` to plain JSON types (see `finite_or_text` for NaN and inf).

    >>> to_jsonable({"a": float("nan"), "b": (1, 2.5), "c": None})
    {'a': 'nan', 'b': [1, 2.5], 'c': None}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return finite_or_text(value)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return to_jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Sequence):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return to_jsonable(value.item())
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def dumps(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON text: None is null, NaN/inf are strings, numpy values become Python values."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, sort_keys=False)


def versions(*packages: str) -> dict[str, str | None]:
    """Versions of vla-eval, Python and the named packages (None if not installed)."""
    out: dict[str, str | None] = {"vla-eval": __version__, "python": platform.python_version()}
    if packages:
        from importlib import metadata

        for name in packages:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[name] = None
    return out


def provenance(
    argv: Sequence[str] | None = None,
    seeds: Mapping[str, Any] | None = None,
    packages: Sequence[str] = (),
) -> dict[str, Any]:
    """Where a result came from: command line, versions, seeds and a UTC timestamp."""
    return {
        "command": list(sys.argv if argv is None else argv),
        "versions": versions(*packages),
        "seeds": dict(seeds or {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write a file so that a crash never leaves it half-written.

    `write` fills a temporary file beside `path` (opened in binary mode); the file is
    flushed and fsynced, renamed over `path`, and the folder fsynced so the rename
    itself is durable (best effort where a folder cannot be opened).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write strict JSON atomically (temporary file, then rename)."""
    data = (dumps(obj) + "\n").encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))
