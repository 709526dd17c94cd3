"""`vla-eval compare`: is one policy really better than another?

Must not import torch: comparisons are exact tests over episode files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vla_eval.cli.common import (
    add_confidence_argument,
    add_import_arguments,
    load_quietly,
    non_empty,
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
    add_confidence_argument(p)
    p.add_argument(
        "--anytime",
        action="store_true",
        help="add an anytime-valid comparison (e-values; valid however often you looked)",
    )
    p.add_argument(
        "--policy-name",
        action="append",
        type=non_empty,
        metavar="NAME",
        help="name of each file's policy, once per file in order (LeRobot's eval_info.json "
        "names none)",
    )
    add_import_arguments(
        p,
        "the --seed every LeRobot suite evaluation ran with (their eval_info.json does "
        "not record it); without it their episodes are not paired",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="also write DIR/compare.json, compare.md, compare.png and report.html (one page)",
    )


def run(args: argparse.Namespace) -> int:
    from vla_eval import report as rep
    from vla_eval.episodes.manifest import shard_problems
    from vla_eval.results import provenance
    from vla_eval.stats.intervals import parse_confidence

    confidence = parse_confidence(args.confidence)
    if args.out:
        output_dir(args.out)  # refuse an unusable --out before any work
    policies = load_quietly(
        lambda: rep.load_policies(
            args.episodes,
            args.policy_name,
            split=args.default_split,
            default_task=args.default_task,
            lerobot_seed=args.lerobot_seed,
        )
    )
    result = rep.build_comparison(policies, confidence, paired=True if args.paired else None)
    # each policy is its own run: every run's shard files are checked for what is missing
    result["notes"] += load_quietly(lambda: shard_problems(args.episodes, allow_mixed_runs=True))
    if args.anytime:
        from vla_eval.report.anytime import anytime_comparison

        result["anytime"] = anytime_comparison(policies, confidence)
    result["provenance"] = provenance(packages=("numpy", "scipy", "statsmodels"))
    for note in result["notes"]:
        warn(note)
    text = rep.format_comparison(result)
    if args.anytime:
        from vla_eval.report.anytime import format_anytime_comparison

        text += "\n" + format_anytime_comparison(result["anytime"])
    if args.out:
        write_out_dir(args.out, lambda folder: _write(folder, result, text))
    if args.json:
        print_json(result)
    else:
        print(text)
    return 0


def _write(folder: Path, result: dict, text: str) -> list[Path]:
    """compare.json, compare.md, compare.png and report.html (which embeds the figure)."""
    from vla_eval.report.figures import plot_comparison
    from vla_eval.report.html import (
        comparison_sections,
        figures_section,
        provenance_section,
        write_html,
    )
    from vla_eval.results import write_json, write_text

    written = [
        write_json(folder / "compare.json", result),
        write_text(folder / "compare.md", text + "\n"),
        plot_comparison(result, folder / "compare.png"),
    ]
    names = ", ".join(str(r["policy"]) for r in result["ranking"])
    page = write_html(
        folder / "report.html",
        f"Comparison: {names}",
        *comparison_sections(result),
        figures_section([written[-1]], {"compare.png": "Success rate per policy, best first."}),
        provenance_section(result.get("provenance")),
    )
    return [*written, page]
