"""Strict JSON results: every file and `--json` output goes through here.

Results are strict JSON (`allow_nan=False`), with one rule for numbers JSON cannot
hold: an undefined value (`None`) is written as `null`, and a measured non-finite
float (a diverged loss, an infinite temperature) as the string ``"nan"``, ``"inf"``
or ``"-inf"``, so it stays visible instead of reading as "not measured". Files are
written atomically (`atomic_write`: temporary file, fsync, rename, folder fsync;
`save_figure` for figures; `clean_leftovers` for what a kill left). Each result
carries a `schema` name and a provenance block (command line, package versions,
seeds, timestamp). This module imports only the standard library; numpy values are
converted by duck typing so `vla-eval wilson` stays light.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import platform
import re
import secrets
import signal
import sys
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


#: What marks a temporary file as one of `atomic_write`'s: ``.NAME.vla-eval-tmp.PID.TOKEN``.
TMP_MARKER = ".vla-eval-tmp."


def _temp_path(path: Path) -> Path:
    return path.parent / f".{path.name}{TMP_MARKER}{os.getpid()}.{secrets.token_hex(4)}"


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Write a file so that a crash never leaves it half-written.

    `write` fills a temporary file beside `path` (``.NAME.vla-eval-tmp.PID.TOKEN``,
    opened in binary mode); the file is flushed and fsynced, renamed over `path`, and
    the folder fsynced so the rename itself is durable (best effort where a folder
    cannot be opened). The file's mode follows the umask, like any file the user
    creates (0644 under the usual umask 022). A kill leaves at most the temporary file,
    which `clean_leftovers` recognises and removes.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write(path, lambda fh: fh.write(b"hi")).read_text()
        'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kill = _kill_point(path)
    tmp = _temp_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            if kill == "during":
                os.kill(os.getpid(), signal.SIGKILL)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    if kill == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return path


_writes_seen: dict[str, int] = {}


def _kill_point(path: Path) -> str | None:
    """The crash tests' hook: ``VLA_EVAL_TEST_KILL_AT=GLOB:N:PHASE`` (PHASE ``during`` or
    ``after``) makes the process SIGKILL itself at the N-th atomic write of a file whose
    name matches GLOB: ``during`` once the temporary file is written, before the rename;
    ``after`` once the file is in place. Unset (always, outside the tests), it does nothing.
    """
    spec = os.environ.get("VLA_EVAL_TEST_KILL_AT")
    if not spec:
        return None
    pattern, n, phase = spec.rsplit(":", 2)
    if not fnmatch.fnmatchcase(path.name, pattern):
        return None
    _writes_seen[pattern] = _writes_seen.get(pattern, 0) + 1
    return phase if _writes_seen[pattern] == int(n) else None


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or creation in `directory` durable (best effort: some systems refuse)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _is_leftover(name: str) -> bool:
    """Whether `name` is a temporary file of ours whose writer is gone."""
    if name.startswith(".") and TMP_MARKER in name:
        pid = name.rsplit(TMP_MARKER, 1)[1].split(".", 1)[0]
        return pid.isdigit() and (int(pid) != os.getpid() and not _pid_alive(int(pid)))
    # Earlier versions: ``.NAME.XXXXXXXX.tmp`` from tempfile.mkstemp (no pid to check).
    return bool(_LEGACY.fullmatch(name))


_LEGACY = re.compile(r"\.(.+\.(?:pt|json|npz|png|jsonl|md))\.[a-z0-9_]{8}\.tmp")


def clean_leftovers(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files a killed `atomic_write` left in `directory`.

    Only files named by `atomic_write` whose writing process is gone are removed (and
    those of earlier versions, ``.NAME.XXXXXXXX.tmp``); call it while holding the
    output's lock (`vla_eval.locking.output_lock`), so no live writer of ours is
    writing there. A missing folder has none.

    Returns:
        The removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        if entry.is_file() and not entry.is_symlink() and _is_leftover(entry.name):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def save_figure(fig: Any, path: str | os.PathLike[str], **savefig: Any) -> Path:
    """Write a matplotlib figure atomically (a kill never leaves a 0-byte or partial PNG).

    Args:
        fig: a ``matplotlib.figure.Figure`` (anything with ``savefig(file, format=...)``).
        path: where to write; the format comes from the suffix (``.png`` when none).
        savefig: passed on to ``fig.savefig`` (``dpi``, ``bbox_inches``, ...).
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, **savefig))


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text (a Markdown report) atomically."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write strict JSON atomically (temporary file, then rename)."""
    data = (dumps(obj) + "\n").encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))
