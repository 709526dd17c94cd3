"""`vla-eval compare`: is one policy really better than another?

Must not import torch: comparisons are exact tests over episode files.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import (
    confidence_text,
    load_quietly,
    output_dir,
    print_json,
    warn,
    write_out_dir,
)

NAME = "compare"
HELP = "is one policy really better? differences, exact tests, Holm-adjusted ranking"
DESCRIPTION = (
    "Compare two or more policies' episode files: difference of success "
    "rates (Newcombe interval), Fisher and Boschloo exact tests, McNemar's exact test "
    "when the policies share (task, split, seed), per task too; three or more "
    "policies get Holm-adjusted p-values and a ranking. "
    "Example: vla-eval compare base.jsonl tuned.jsonl --paired"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("episodes", nargs="+", metavar="EPISODES", help="one episode file per policy")
    p.add_argument(
        "--paired",
        action="store_true",
        help="require matching (task, split, seed) episodes and use McNemar's test",
    )
    p.add_argument(
        "--confidence",
        "-c",
        default="0.95",
        type=confidence_text,
        help="confidence level in (0, 1)",
    )
    p.add_argument(
        "--anytime",
        action="store_true",
        help="add an anytime-valid comparison (e-values; valid however often you looked)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="also write DIR/compare.json")


def run(args: argparse.Namespace) -> int:
    from vla_eval import report as rep
    from vla_eval.results import provenance, write_json
    from vla_eval.stats.intervals import parse_confidence

    confidence = parse_confidence(args.confidence)
    if args.out:
        output_dir(args.out)  # refuse an unusable --out before any work
    policies = load_quietly(lambda: rep.load_policies(args.episodes))
    result = rep.build_comparison(policies, confidence, paired=True if args.paired else None)
    if args.anytime:
        from vla_eval.report.anytime import anytime_comparison

        result["anytime"] = anytime_comparison(policies, confidence)
    result["provenance"] = provenance(packages=("numpy", "scipy", "statsmodels"))
    for note in result["notes"]:
        warn(note)
    if args.out:
        write_out_dir(args.out, lambda folder: [write_json(folder / "compare.json", result)])
    if args.json:
        print_json(result)
    else:
        text = rep.format_comparison(result)
        if args.anytime:
            from vla_eval.report.anytime import format_anytime_comparison

            text += "\n" + format_anytime_comparison(result["anytime"])
        print(text)
    return 0
