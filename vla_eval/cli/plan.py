"""`vla-eval plan`: how many trials an evaluation needs, or what a number of trials can detect.

Must not import torch: planning is closed-form statistics.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import print_json
from vla_eval.errors import UsageError

NAME = "plan"
HELP = "how many trials: to detect p0 -> p1, for a CI half-width, or what n can detect"
DESCRIPTION = (
    "Plan an evaluation. Examples: vla-eval plan --p0 0.5 --p1 0.7 "
    "(trials per policy); vla-eval plan --half-width 0.1 --p 0.5 (trials for a Wilson "
    "half-width); vla-eval plan --trials 50 --p0 0.5 (minimum detectable difference)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--p0", type=float, help="baseline success rate")
    p.add_argument("--p1", type=float, help="success rate to detect")
    p.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    p.add_argument("--half-width", type=float, help="target Wilson interval half-width")
    p.add_argument("--p", type=float, default=0.5, help="expected rate for --half-width")
    p.add_argument("--confidence", "-c", default="0.95", help="level for --half-width")
    p.add_argument("--trials", type=int, help="trials per policy: minimum detectable difference")
    p.add_argument("--method", default="pooled", help="pooled (default) or arcsine")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    modes = [
        args.p1 is not None,
        args.half_width is not None,
        args.trials is not None,
    ]
    if sum(modes) != 1:
        raise UsageError(
            "plan needs exactly one of: --p0 P0 --p1 P1 (trials to detect a change), "
            "--half-width H (trials for an interval width), --trials N (detectable change)"
        )
    if args.p1 is not None:
        body, text = _trials_to_detect(args)
    elif args.half_width is not None:
        body, text = _trials_for_half_width(args)
    else:
        body, text = _detectable_difference(args)
    if args.json:
        from vla_eval.results import provenance

        print_json({"schema": "vla-eval/plan/1", **body, "provenance": provenance()})
    else:
        print(text)
    return 0


def _trials_to_detect(args: argparse.Namespace) -> tuple[dict, str]:
    from vla_eval.stats import planning

    if args.p0 is None:
        raise UsageError("--p1 needs --p0 (the baseline rate)")
    n = planning.trials_to_detect(args.p0, args.p1, args.alpha, args.power, args.method)
    body = {
        "question": "trials per policy to detect p0 -> p1",
        "p0": args.p0,
        "p1": args.p1,
        "alpha": args.alpha,
        "power": args.power,
        "method": args.method,
        "trials_per_policy": n,
    }
    text = (
        f"{n} trials per policy ({2 * n} in all) detect {100 * args.p0:.1f}% -> "
        f"{100 * args.p1:.1f}% with {100 * args.power:g}% power at two-sided "
        f"alpha = {args.alpha:g} ({args.method} normal approximation)."
    )
    return body, text


def _trials_for_half_width(args: argparse.Namespace) -> tuple[dict, str]:
    from vla_eval.stats import planning
    from vla_eval.stats.intervals import parse_confidence

    confidence = parse_confidence(args.confidence)
    n = planning.trials_for_half_width(args.half_width, args.p, confidence)
    body = {
        "question": "trials for a Wilson interval half-width",
        "half_width": args.half_width,
        "rate": args.p,
        "confidence": confidence,
        "trials": n,
        "achieved_half_width": planning.wilson_half_width(args.p, n, confidence),
    }
    text = (
        f"{n} trials give a {100 * confidence:g}% Wilson interval of half-width at most "
        f"{100 * args.half_width:.1f} points when the rate is {100 * args.p:.1f}% "
        f"(achieved: {100 * body['achieved_half_width']:.2f})."
    )
    return body, text


def _detectable_difference(args: argparse.Namespace) -> tuple[dict, str]:
    from vla_eval.stats import planning

    p0 = 0.5 if args.p0 is None else args.p0
    mdd = planning.minimum_detectable_difference(
        args.trials, p0, args.alpha, args.power, args.method
    )
    body = {"question": "minimum detectable difference", **mdd.to_dict()}

    def change(x: float | None, sign: str) -> str:
        return "none possible" if x is None else f"{sign}{100 * x:.1f} points"

    text = (
        f"With {args.trials} trials per policy and a baseline of {100 * p0:.1f}%, the "
        f"smallest change detected with {100 * args.power:g}% power at two-sided alpha = "
        f"{args.alpha:g} is {change(mdd.increase, '+')} (up) or "
        f"{change(mdd.decrease, '-')} (down)."
    )
    return body, text
