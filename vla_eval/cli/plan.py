"""`vla-eval plan`: how many trials an evaluation needs, or what a number of trials can detect.

Must not import torch: planning is closed-form statistics.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import confidence_text, print_json, real_number, whole_number
from vla_eval.errors import UsageError

_RATE = real_number(0.0, 1.0)
_LEVEL = real_number(1e-12, 1 - 1e-12)  # beyond these the normal quantile is not representable

NAME = "plan"
HELP = "how many trials: to detect p0 -> p1, for a CI half-width, or what n can detect"
DESCRIPTION = (
    "Plan an evaluation. Examples: vla-eval plan --p0 0.5 --p1 0.7 "
    "(trials per policy); vla-eval plan --half-width 0.1 --p 0.5 (trials for a Wilson "
    "half-width); vla-eval plan --trials 50 --p0 0.5 (minimum detectable difference)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--p0", type=_RATE, help="baseline success rate")
    p.add_argument("--p1", type=_RATE, help="success rate to detect")
    p.add_argument("--power", type=_LEVEL, default=0.8, help="power (default 0.8)")
    p.add_argument("--alpha", type=_LEVEL, default=0.05, help="two-sided level (default 0.05)")
    p.add_argument(
        "--half-width", type=real_number(1e-4, 0.5), help="target Wilson interval half-width"
    )
    p.add_argument("--p", type=_RATE, default=0.5, help="expected rate for --half-width")
    p.add_argument(
        "--confidence", "-c", default="0.95", type=confidence_text, help="level for --half-width"
    )
    p.add_argument(
        "--trials",
        type=whole_number(1, 10**9),
        help="trials per policy: minimum detectable difference",
    )
    p.add_argument(
        "--method", default="pooled", help="normal formula shown beside: pooled or arcsine"
    )
    p.add_argument(
        "--test",
        choices=("boschloo", "fisher", "mcnemar", "z"),
        help="test whose exact power is planned for (default: the test compare uses: "
        "mcnemar with --discordance, else boschloo)",
    )
    p.add_argument(
        "--discordance",
        type=real_number(1e-6, 1.0),
        help="paired plan: chance that the two policies disagree on an episode",
    )
    p.add_argument(
        "--assurance",
        type=_LEVEL,
        help="--half-width: chance that the achieved Wilson half-width is within target",
    )
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

        print_json({"schema": "vla-eval/plan/2", **body, "provenance": provenance()})
    else:
        print(text)
    return 0


def _trials_to_detect(args: argparse.Namespace) -> tuple[dict, str]:
    from vla_eval.stats import planning
    from vla_eval.stats.exact_power import exact_trials_to_detect

    if args.p0 is None:
        raise UsageError("--p1 needs --p0 (the baseline rate)")
    formula = planning.trials_to_detect(args.p0, args.p1, args.alpha, args.power, args.method)
    test = args.test or ("mcnemar" if args.discordance is not None else "boschloo")
    plan = exact_trials_to_detect(
        args.p0, args.p1, test, args.alpha, args.power, discordance=args.discordance
    )
    n = plan.trials
    body = {
        "question": "trials per policy to detect p0 -> p1",
        "p0": args.p0,
        "p1": args.p1,
        "alpha": args.alpha,
        "power": args.power,
        "test": test,
        "discordance": args.discordance,
        "trials_per_policy": n,
        "exact_power": plan.power,
        "formula": {"method": args.method, "trials_per_policy": formula},
    }
    unit = "paired episodes (each policy runs them)" if test == "mcnemar" else "trials per policy"
    text = (
        f"{n} {unit} detect {100 * args.p0:.1f}% -> {100 * args.p1:.1f}% with "
        f"{100 * plan.power:.1f}% exact power (target {100 * args.power:g}%) by "
        f"{_TEST_NAMES[test]} at two-sided alpha = {args.alpha:g}. "
        f"The {args.method} normal formula says {formula} per policy."
    )
    return body, text


_TEST_NAMES = {
    "boschloo": "Boschloo's exact test",
    "fisher": "Fisher's exact test",
    "z": "the pooled z-test",
    "mcnemar": "McNemar's exact test",
}


def _trials_for_half_width(args: argparse.Namespace) -> tuple[dict, str]:
    from vla_eval.stats import planning
    from vla_eval.stats.intervals import parse_confidence

    confidence = parse_confidence(args.confidence)
    if args.assurance is not None:
        return _half_width_assured(args, confidence)
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


def _half_width_assured(args: argparse.Namespace, confidence: float) -> tuple[dict, str]:
    from vla_eval.stats.exact_power import trials_for_half_width_assured

    plan = trials_for_half_width_assured(args.half_width, args.p, confidence, args.assurance)
    body = {
        "question": "trials for a Wilson interval half-width, with assurance",
        "half_width": args.half_width,
        "rate": args.p,
        "confidence": confidence,
        "assurance": args.assurance,
        "trials": plan.trials,
        "achieved_assurance": plan.power,
    }
    text = (
        f"{plan.trials} trials give a {100 * confidence:g}% Wilson interval of half-width at "
        f"most {100 * args.half_width:.1f} points with probability "
        f"{100 * plan.power:.1f}% (asked: {100 * args.assurance:g}%) when the true rate "
        f"is {100 * args.p:.1f}%."
    )
    return body, text
