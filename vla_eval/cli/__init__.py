"""The `vla-eval` command line.

Declarative argparse: each subcommand is one module of this package that names itself
(`NAME`, `HELP`, `DESCRIPTION`), declares its arguments (`add_arguments`) and handles them
(`run`). Handlers import their feature modules lazily so that `vla-eval wilson` and
`vla-eval report` never import torch. `main` here is the one place that turns a `UsageError`
into a single line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
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
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as exc:
        message = " ".join(str(exc).split())  # exactly one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


__all__ = ["build_parser", "main"]
