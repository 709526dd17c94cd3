"""The `vla-eval` command line.

argparse with one small `_add_<name>` (arguments) and `_run_<name>` (handler) pair per
subcommand. Handlers import their feature modules lazily so that `vla-eval wilson`
and `vla-eval report` never import torch. This is the one place that turns a
`UsageError` into a single line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vla_eval import __version__
from vla_eval.errors import UsageError

PROG = "vla-eval"


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become one-line `UsageError`s (exit 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _print_json(obj: object) -> None:
    from vla_eval.results import dumps

    sys.stdout.write(dumps(obj) + "\n")


# --- wilson -------------------------------------------------------------------


def _add_wilson(sub: argparse._SubParsersAction) -> None:
    from vla_eval.stats.intervals import METHODS

    p = sub.add_parser(
        "wilson",
        help="confidence interval for a success rate (k successes in n trials)",
        description="Confidence interval for a binomial success rate. "
        "Example: vla-eval wilson --successes 17 --trials 20",
    )
    p.add_argument("--successes", "-k", required=True, help="number of successful trials")
    p.add_argument("--trials", "-n", required=True, help="number of trials")
    p.add_argument("--confidence", "-c", default="0.95", help="confidence level in (0, 1)")
    p.add_argument("--method", "-m", default="wilson", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--all", action="store_true", help="print every method side by side")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_wilson)


def _run_wilson(args: argparse.Namespace) -> int:
    from vla_eval.stats import intervals

    k = intervals.parse_count(args.successes, "--successes")
    n = intervals.parse_count(args.trials, "--trials")
    confidence = intervals.parse_confidence(args.confidence)
    methods = intervals.METHODS if args.all else (intervals.check_method(args.method),)
    results = [intervals.binomial_interval(k, n, confidence, m) for m in methods]
    if args.json:
        from vla_eval.results import provenance

        body = {
            "schema": "vla-eval/wilson/1",
            "inputs": {"successes": k, "trials": n, "confidence": confidence},
            "intervals": [r.to_dict() for r in results],
            "provenance": provenance(),
        }
        _print_json(body)
    elif args.all:
        print(intervals.format_table(results))
    else:
        print(results[0].describe())
    return 0


# --- main -----------------------------------------------------------------------

_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_wilson,
]


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommand arguments are cheap to build (no heavy imports)."""
    parser = _Parser(
        prog=PROG,
        description="Evaluate, compare and diagnose vision-language-action robot policies.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in _SUBCOMMANDS:
        add(sub)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
