"""What every `vla-eval` subcommand shares: the parser class, JSON and warning output.

Stdlib only at import time (results are imported inside `print_json`), so that building the
parser never pays for numpy, torch or scipy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

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
