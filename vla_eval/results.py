"""Strict JSON results: every file and `--json` output goes through here.

Results are strict JSON (`allow_nan=False`): an undefined value is written as `null`,
never as NaN. Each result carries a `schema` name and a provenance block (command
line, package versions, seeds, timestamp). This module imports only the standard
library; numpy values are converted by duck typing so `vla-eval wilson` stays light.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vla_eval import __version__


def to_jsonable(value: Any) -> Any:
    """Convert `value` to plain JSON types; non-finite floats become None.

    >>> to_jsonable({"a": float("nan"), "b": (1, 2.5)})
    {'a': None, 'b': [1, 2.5]}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
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
    """Strict JSON text: NaN/inf become null, numpy values become Python values."""
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


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write strict JSON atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(obj) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
