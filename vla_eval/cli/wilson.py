"""`vla-eval wilson`: a confidence interval for one success rate.

Must stay light: it imports only `vla_eval.stats.intervals` (no numpy, scipy or torch).
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import (
    MAX_COUNT,
    add_confidence_argument,
    print_json,
    whole_number,
)

NAME = "wilson"
HELP = "confidence interval for a success rate (k successes in n trials)"
DESCRIPTION = (
    "Confidence interval for a binomial success rate. "
    "Example: vla-eval wilson --successes 17 --trials 20"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from vla_eval.stats.intervals import METHODS

    p.add_argument(
        "--successes",
        "-k",
        required=True,
        type=whole_number(0, MAX_COUNT),
        help="successful trials",
    )
    p.add_argument(
        "--trials", "-n", required=True, type=whole_number(0, MAX_COUNT), help="number of trials"
    )
    add_confidence_argument(p)
    p.add_argument("--method", "-m", default="wilson", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--all", action="store_true", help="print every method side by side")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from vla_eval.stats import intervals

    k, n = args.successes, args.trials
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
        print_json(body)
    elif args.all:
        print(intervals.format_table(results))
    else:
        print(results[0].describe())
    return 0
