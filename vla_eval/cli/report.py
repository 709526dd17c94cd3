"""`vla-eval report`: success rates per task and split, with intervals and the gap.

Must not import torch: reading episodes and building the report is numpy/scipy only.
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
    seed_number,
    warn,
    whole_number,
    write_out_dir,
)
from vla_eval.cli.tracking import add_tracker_arguments, log_success_report, open_tracker

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
    p.add_argument("--by", default="task,split", help="group by these fields (task, split, group)")
    p.add_argument("--splits", help="comma list of splits that must have episodes")
    add_confidence_argument(p)
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
        "--policy-name",
        type=non_empty,
        help="the policy's name, overriding the files' (LeRobot's eval_info.json names none)",
    )
    add_import_arguments(
        p,
        "the --seed lerobot-eval ran with (its suite eval_info.json does not record it)",
    )
    p.add_argument(
        "--anytime",
        action="store_true",
        help="add anytime-valid intervals (valid however often you looked while episodes arrived)",
    )
    p.add_argument(
        "--allow-mixed-runs",
        action="store_true",
        help="accept shard files of different runs (each run's shards are still checked)",
    )
    add_tracker_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="also write DIR/report.json, report.md, forest.png and report.html (one page)",
    )


def run(args: argparse.Namespace) -> int:
    from vla_eval import report as rep
    from vla_eval.episodes import count_episodes
    from vla_eval.episodes.manifest import shard_problems
    from vla_eval.results import provenance
    from vla_eval.stats.intervals import parse_confidence

    by = rep.parse_by(args.by)
    confidence = parse_confidence(args.confidence)
    if args.out:
        output_dir(args.out)  # refuse an unusable --out before any work
    tracker = open_tracker(
        args,
        args.out or Path(args.episodes[0]).parent,
        {"command": "report", "episodes": [str(e) for e in args.episodes]},
    )
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    counts = load_quietly(
        lambda: count_episodes(
            args.episodes,
            split=args.default_split,
            policy_name=args.policy_name,
            default_task=args.default_task,
            lerobot_seed=args.lerobot_seed,
        )
    )
    shards = load_quietly(
        lambda: shard_problems(args.episodes, allow_mixed_runs=args.allow_mixed_runs)
    )
    result = rep.build_report(
        counts,
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
    result["warnings"] += shards  # missing shards or episodes of a sharded run
    result["provenance"] = provenance(seeds=result["seeds"], packages=("numpy",))
    log_success_report(tracker, result)
    for w in result["warnings"]:
        warn(w)
    text = _text(result, args.anytime)
    if args.out:
        write_out_dir(args.out, lambda folder: _write(folder, result, text))
    if args.json:
        print_json(result)
    else:
        print(text)
    return 0


def _text(result: dict, anytime: bool) -> str:
    """The Markdown report (what the command prints, and report.md)."""
    from vla_eval import report as rep

    text = rep.format_report(result)
    if anytime:
        from vla_eval.report.anytime import format_anytime_report

        text += "\n" + format_anytime_report(result["anytime"])
    return text


def _write(folder: Path, result: dict, text: str) -> list[Path]:
    """report.json, report.md, forest.png and report.html (which embeds the figure)."""
    from vla_eval import report as rep
    from vla_eval.report.html import write_report_html
    from vla_eval.results import write_json, write_text

    written = [
        write_json(folder / "report.json", result),
        rep.plot_report(result, folder / "forest.png"),
        write_text(folder / "report.md", text + "\n"),
    ]
    written.append(write_report_html(folder / "report.html", result, figures=[written[1]]))
    return written
