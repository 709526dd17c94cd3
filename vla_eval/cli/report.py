"""`vla-eval report`: success rates per task and split, with intervals and the gap.

Must not import torch: reading episodes and building the report is numpy/scipy only.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import (
    confidence_text,
    load_quietly,
    non_empty,
    output_dir,
    print_json,
    seed_number,
    warn,
    whole_number,
    write_out_dir,
)

# Replicates of the stratified bootstrap: beyond this the draws alone need gigabytes.
MAX_BOOTSTRAP = 1_000_000

NAME = "report"
HELP = "success rates per task and split with intervals, and the seen->unseen gap"
DESCRIPTION = (
    "Success report of one policy's episodes: per (task, split) Wilson "
    "intervals, per split the pooled rate and the mean of task rates (stratified "
    "bootstrap), and the seen->unseen gap (Newcombe). Reads vla-eval .jsonl, .csv "
    "(task,split,seed,success) and LeRobot eval_info.json. "
    "Example: vla-eval report runs/episodes.jsonl --out runs/report"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("episodes", nargs="+", metavar="EPISODES", help="episode files")
    p.add_argument("--by", default="task,split", help="group by these fields (task, split)")
    p.add_argument("--splits", help="comma list of splits that must have episodes")
    p.add_argument(
        "--confidence",
        "-c",
        default="0.95",
        type=confidence_text,
        help="confidence level in (0, 1)",
    )
    p.add_argument(
        "--macro",
        choices=("adjusted", "bootstrap"),
        default="adjusted",
        help="interval for the mean of task rates: adjusted (default; near-nominal "
        "coverage) or bootstrap (stratified percentile; under-covers with few trials)",
    )
    p.add_argument(
        "--seed", type=seed_number(), default=0, help="seed for --macro bootstrap (recorded)"
    )
    p.add_argument(
        "--bootstrap",
        type=whole_number(1, MAX_BOOTSTRAP),
        default=10_000,
        help=f"replicates for --macro bootstrap (1 to {MAX_BOOTSTRAP:,})",
    )
    p.add_argument(
        "--default-split",
        default="default",
        type=non_empty,
        help="split for files that have none (LeRobot eval_info.json)",
    )
    p.add_argument(
        "--anytime",
        action="store_true",
        help="add anytime-valid intervals (valid however often you looked while episodes arrived)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="also write DIR/report.json and DIR/forest.png")


def run(args: argparse.Namespace) -> int:
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes
    from vla_eval.results import provenance, write_json
    from vla_eval.stats.intervals import parse_confidence

    by = rep.parse_by(args.by)
    confidence = parse_confidence(args.confidence)
    if args.out:
        output_dir(args.out)  # refuse an unusable --out before any work
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    table = load_quietly(lambda: load_episodes(args.episodes, split=args.default_split))
    result = rep.build_report(
        table,
        by,
        confidence,
        seed=args.seed,
        n_bootstrap=args.bootstrap,
        splits=splits,
        macro=args.macro,
    )
    if args.anytime:
        from vla_eval.report.anytime import anytime_report

        result["anytime"] = anytime_report(result)
    result["provenance"] = provenance(seeds=result["seeds"], packages=("numpy",))
    for w in result["warnings"]:
        warn(w)
    if args.out:
        write_out_dir(
            args.out,
            lambda folder: [
                write_json(folder / "report.json", result),
                rep.plot_report(result, folder / "forest.png"),
            ],
        )
    if args.json:
        print_json(result)
    else:
        text = rep.format_report(result)
        if args.anytime:
            from vla_eval.report.anytime import format_anytime_report

            text += "\n" + format_anytime_report(result["anytime"])
        print(text)
    return 0
