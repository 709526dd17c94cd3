"""What every `vla-eval` subcommand shares: the parser, JSON and warning output, path checks.

Stdlib only at import time (results are imported inside `print_json`), so that building the
parser never pays for numpy, torch or scipy.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError

PROG = "vla-eval"


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become one-line `UsageError`s (exit 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def print_json(obj: object) -> None:
    """Print one strict JSON object on stdout."""
    from vla_eval.results import dumps

    sys.stdout.write(dumps(obj) + "\n")


def warn(message: str) -> None:
    """One `vla-eval: warning: ...` line on stderr."""
    print(f"{PROG}: warning: {' '.join(message.split())}", file=sys.stderr)


def load_quietly(load: Callable[[], object]) -> object:
    """Run a loader, turning its warnings (a truncated last line) into stderr lines."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load()
    for w in caught:
        warn(str(w.message))
    return result


def split_list(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as a tuple (None stays None; an empty list is an error)."""
    if text is None:
        return None
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise UsageError(f"expected a comma-separated list, got {text!r}")
    return items


def os_reason(exc: OSError) -> str:
    """The human part of an `OSError` ("No such file or directory"), without the path."""
    return exc.strerror or exc.__class__.__name__


def _stat(path: Path, label: str) -> os.stat_result | None:
    """`path`'s status following symlinks; None if nothing is there; UsageError if unreadable."""
    try:
        return path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise UsageError(f"{label}: is a symbolic link to nothing (broken link)") from None
        return None
    except OSError as exc:  # a symlink loop, a path under a file, no permission
        raise UsageError(f"{label}: cannot use this path ({os_reason(exc)})") from None


def _probe_writable(folder: Path, label: str) -> None:
    """Create and remove a tiny file in `folder`, so an unwritable place fails before any work."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".vla-eval-probe.", dir=folder)
    except OSError as exc:
        raise UsageError(f"{label}: cannot write in this folder ({os_reason(exc)})") from None
    os.close(fd)
    os.unlink(probe)


def output_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check (and create) a folder a command writes into; every `--out DIR` goes through here.

    Refuses, with one line naming the option and path: an existing file or device
    (``/dev/null``), a path under a file, a symlink loop or broken link, and a folder that
    cannot be created or written to. Nothing is written except the folder itself.

    Args:
        path: the folder; created with its parents if missing.
        option: how the user gave it, for the message (``--out``).

    Returns:
        The folder as a `Path`.

    Raises:
        UsageError: the folder cannot be used.
    """
    path = Path(path)
    label = f"{option} {path}"
    st = _stat(path, label)
    if st is None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{label}: cannot create the folder ({os_reason(exc)})") from None
    elif not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{label}: exists and is not a folder; give a folder path")
    _probe_writable(path, label)
    return path


def write_out_dir(out: str | os.PathLike[str], write: Callable[[Path], list[Path]]) -> None:
    """Write a command's ``--out`` folder under its exclusive lock; say what was written.

    Args:
        out: the folder (already checked with `output_dir`).
        write: writes the files into the folder and returns their paths.
    """
    from vla_eval.locking import output_lock

    folder = Path(out)
    with output_lock(folder, "report directory", directory=True):
        paths = write(folder)
    print(f"{PROG}: wrote {' and '.join(str(p) for p in paths)}", file=sys.stderr)


def output_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check a file a command writes or appends to (its folder is created if missing).

    Refuses, with one line naming the option and path: a folder, anything that is not a
    regular file (``/dev/null``, ``/dev/full``, a FIFO), a symlink loop or broken link, a
    path under a file, and a place that cannot be written. The file itself is not created.

    Raises:
        UsageError: the file cannot be used.
    """
    path = Path(path)
    label = f"{option} {path}"
    st = _stat(path, label)
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{label}: is a folder; give a file path")
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"{label}: is not a regular file (a device, pipe or socket)")
        if not os.access(path, os.W_OK):
            raise UsageError(f"{label}: file is not writable")
    parent = path.parent
    pst = _stat(parent, label)
    if pst is None:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{label}: cannot create its folder ({os_reason(exc)})") from None
    elif not stat.S_ISDIR(pst.st_mode):
        raise UsageError(f"{label}: {parent} is not a folder")
    _probe_writable(parent, label)
    return path


# Argument types: every number a user types is checked here, with the limit in the message,
# before any work starts. Each returns the parsed value unless noted.
MAX_SEED = 2**63 - 1  # numpy and torch seeds are unsigned 64-bit; int64 keeps JSON portable
MAX_COUNT = 10**15  # successes, trials, dataset counts: far beyond any real evaluation


def _argument_type(name: str) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """Make a checker an argparse type: its UsageError becomes argparse's message."""

    def wrap(check: Callable[[str], Any]) -> Callable[[str], Any]:
        def parse(text: str) -> Any:
            try:
                return check(text)
            except UsageError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None

        parse.__name__ = name
        return parse

    return wrap


def _number_text(text: str) -> str:
    s = text.strip()
    if not s:
        raise UsageError("needs a value")
    if len(s) > 40:
        raise UsageError(f"{s[:20]!r}... is too long for a number here (over 40 characters)")
    return s


def whole_number(minimum: int = 0, maximum: int = MAX_COUNT) -> Callable[[str], int]:
    """An argparse type: a decimal whole number (ASCII digits only) in [minimum, maximum]."""

    if minimum == 0:
        expected = f"a non-negative whole number (at most {maximum:,})"
    else:
        expected = f"a whole number from {minimum:,} to {maximum:,}"

    @_argument_type("whole number")
    def parse(text: str) -> int:
        s = _number_text(text)
        digits = s[1:] if s[0] in "+-" else s
        if not (digits.isascii() and digits.isdigit()):
            raise UsageError(f"must be {expected}, got {text!r}")
        value = int(s)
        if not minimum <= value <= maximum:
            raise UsageError(f"must be {expected}, got {s}")
        return value

    return parse


def seed_number() -> Callable[[str], int]:
    """An argparse type: a seed, a whole number in [0, 2^63 - 1]."""
    return whole_number(0, MAX_SEED)


def real_number(
    low: float,
    high: float,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
) -> Callable[[str], float]:
    """An argparse type: a finite decimal number in the stated range (`inf` if allowed)."""

    @_argument_type("number")
    def parse(text: str) -> float:
        s = _number_text(text)
        try:
            value = float(s)
        except ValueError:
            raise UsageError(f"must be a number, got {text!r}") from None
        if allow_inf and value == float("inf"):
            return value
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if value != value or too_low or too_high:
            lo = f"{'(' if low_open else '['}{low:g}"
            hi = f"{high:g}{')' if high_open else ']'}"
            extra = " or inf" if allow_inf else ""
            raise UsageError(f"must be a number in {lo}, {hi}{extra}, got {s}")
        return value

    return parse


def checked_text(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type that validates the text with `check` and passes it on unchanged."""

    @_argument_type("value")
    def parse(text: str) -> str:
        check(text)
        return text

    return parse


# Confidence levels: beyond these the normal quantile 1 - (1 - c) / 2 rounds to 1.
CONFIDENCE_LIMITS = (1e-9, 1 - 1e-9)


def check_confidence_text(text: str) -> float:
    """A confidence level written as 0.95 or 95%, within `CONFIDENCE_LIMITS`."""
    s = _number_text(text)
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise UsageError(f"must be a number in (0, 1), got {text!r}") from None
    low, high = CONFIDENCE_LIMITS
    if not low <= value <= high:
        raise UsageError(
            f"must lie strictly between 0 and 1 (from {low:g} to 1 - {1 - high:.0e}: "
            f"beyond, the interval's normal quantile is not representable), got {s}"
        )
    return value


#: `--confidence`: validated, then passed on as text (the handlers parse it themselves).
confidence_text = checked_text(check_confidence_text)


def check_counts_text(text: str) -> None:
    """``task=count,...`` with every count a whole number in [0, MAX_COUNT]."""
    parse = whole_number(0, MAX_COUNT)
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if sep and value.strip():
            try:
                parse(value)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"the count of task {name.strip()!r}: {exc}") from None


#: `--counts` / `--task-counts`: validated, then passed on as text.
counts_text = checked_text(check_counts_text)

# Temperatures: below this, n^(1/T) overflows a float for any real dataset size.
MIN_TEMPERATURE = 1e-3


def check_temperatures_text(text: str) -> None:
    """A comma list of temperatures, each in [MIN_TEMPERATURE, 1e6] or ``inf``."""
    parse = real_number(MIN_TEMPERATURE, 1e6, allow_inf=True)
    for item in text.split(","):
        if item.strip():
            try:
                parse(item)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(str(exc)) from None


#: `--temperature`: validated, then passed on as text.
temperatures_text = checked_text(check_temperatures_text)


@_argument_type("text")
def non_empty(text: str) -> str:
    """An argparse type: a string with something in it besides spaces."""
    if not text.strip():
        raise UsageError("must not be empty")
    return text


def add_import_arguments(p: argparse.ArgumentParser, lerobot_seed_help: str) -> None:
    """``--default-split``, ``--default-task`` and ``--lerobot-seed``: what files from other
    tools (LeRobot's eval_info.json, CSV) do not say."""
    p.add_argument(
        "--default-split",
        default="default",
        type=non_empty,
        help="split for files that have none (LeRobot eval_info.json, CSV without a split column)",
    )
    p.add_argument(
        "--default-task",
        default="default",
        type=non_empty,
        help="task of LeRobot's single-environment eval_info.json, which names none",
    )
    p.add_argument("--lerobot-seed", type=seed_number(), help=lerobot_seed_help)


def add_confidence_argument(p: argparse.ArgumentParser) -> None:
    """``--confidence/-c``: the level of every interval a command prints (default 0.95)."""
    p.add_argument(
        "--confidence",
        "-c",
        default="0.95",
        type=confidence_text,
        help="confidence level in (0, 1)",
    )
