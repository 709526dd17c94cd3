"""The `vla-eval` command line.

Declarative argparse: each subcommand is one module of this package that names itself
(`NAME`, `HELP`, `DESCRIPTION`), declares its arguments (`add_arguments`) and handles them
(`run`). Handlers import their feature modules lazily so that `vla-eval wilson` and
`vla-eval report` never import torch. `main` here is the one error boundary: a `UsageError`, and
any error that comes from the user's files, options or devices, becomes a single line on
stderr and exit status 2 (`user_error_message` says which errors those are).
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from vla_eval import __version__
from vla_eval.cli import (
    compare,
    diagnose,
    offline,
    online,
    plan,
    quickstart,
    report,
    run,
    sampling,
    train,
    wilson,
)
from vla_eval.cli.common import PROG, Parser
from vla_eval.errors import UsageError

# In the order `vla-eval --help` lists them.
SUBCOMMANDS: tuple[ModuleType, ...] = (
    wilson,
    sampling,
    report,
    compare,
    plan,
    diagnose,
    train,
    online,
    quickstart,
    run,
    offline,
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommand arguments are cheap to build (no heavy imports)."""
    parser = Parser(
        prog=PROG,
        description="Evaluate, compare and diagnose vision-language-action robot policies.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in SUBCOMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 a finding, 2 bad input).

    The one error boundary: a `UsageError`, and any error that comes from the files,
    options or devices the user gave (an `OSError` with its file, text that is not
    UTF-8, malformed JSON/TOML/zip, input nested too deeply, a number out of range, a
    request too large for memory, standard output on a full device or a closed pipe)
    becomes one line on stderr and exit status 2. Anything else is a bug and keeps its
    traceback.
    """
    _tolerant_streams()
    try:
        args = build_parser().parse_args(argv)
        status = int(args.func(args) or 0)
        _flush_stdout()
        return status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # sorted into user errors and bugs below
        message = user_error_message(exc)
        if message is None:
            raise
        _report(message)
        return 2


def _flush_stdout() -> None:
    """Flush stdout inside the boundary, so a full device or closed pipe is reported here."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        raise _StdoutError(exc) from None


class _StdoutError(Exception):
    def __init__(self, exc: OSError) -> None:
        super().__init__(exc)
        self.exc = exc


def _report(message: str) -> None:
    """One line on stderr; stdout is pointed at /dev/null if it is broken or full."""
    line = " ".join(message.split())
    try:
        print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr itself is gone: nothing left to tell
    _silence_broken_stdout()


def _silence_broken_stdout() -> None:
    """Stop the interpreter's final flush from failing again on a broken or full stdout."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (captured in tests)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except OSError:
        pass


def _tolerant_streams() -> None:
    """Print names that are not valid Unicode (lone surrogates) escaped, never as a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (OSError, ValueError):
                pass


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error caused by the user's input, or None for a bug."""
    if isinstance(exc, _StdoutError):
        exc = exc.exc
        if isinstance(exc, BrokenPipeError):
            return "standard output was closed before all output was written (broken pipe)"
        return f"cannot write to standard output ({exc.strerror or exc})"
    if isinstance(exc, UsageError):
        return str(exc)
    if isinstance(exc, BrokenPipeError) and exc.filename is None:
        return "standard output was closed before all output was written (broken pipe)"
    if isinstance(exc, OSError):
        if exc.filename is not None:
            return f"{exc.filename}: {exc.strerror or exc}"
        if exc.errno in (errno.ENOSPC, errno.EPIPE, errno.EIO):
            return f"cannot write to standard output ({exc.strerror})"
        return f"input/output error ({exc.strerror or exc})"
    if isinstance(exc, UnicodeDecodeError):
        return f"input is not UTF-8 text ({exc.reason})"
    if isinstance(exc, RecursionError):
        return "input is nested too deeply to read (a JSON or TOML structure hundreds deep?)"
    if isinstance(exc, MemoryError):
        return "not enough memory for this request; ask for fewer trials, bins or replicates"
    if isinstance(exc, OverflowError):
        return f"a number is out of range ({exc})"
    for module, name in _PARSE_ERRORS:
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if cls is not None and isinstance(exc, cls):
            return f"malformed input ({name}: {exc})"
    return None


# Parsing errors of the formats the commands read, recognised without importing them.
_PARSE_ERRORS = (
    ("json", "JSONDecodeError"),
    ("tomllib", "TOMLDecodeError"),
    ("tomli", "TOMLDecodeError"),
    ("zipfile", "BadZipFile"),
    ("csv", "Error"),
    ("pickle", "UnpicklingError"),
)


__all__ = ["build_parser", "main", "user_error_message"]
