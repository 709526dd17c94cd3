"""`vla-eval diagnose`: the failure-table detectors over a finished run or over rollouts.

Reads logged metrics and episodes; must not import torch or the trainer.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import counts_text, print_json

NAME = "diagnose"
HELP = "failure-table detectors over a finished run's metrics or over rollouts"
DESCRIPTION = (
    "Run the training-failure detectors offline over RUN_DIR/metrics.jsonl "
    "(or a metrics .jsonl), or check an episodes .jsonl whose records carry 'actions' "
    "for rollout jitter. Example: vla-eval diagnose runs/quickstart"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", metavar="RUN_DIR|FILE.jsonl", help="run directory, metrics or episodes file"
    )
    p.add_argument(
        "--task-counts",
        type=counts_text,
        help="dataset counts per task for the temperature suggestion, e.g. pick=50000,pour=500",
    )
    p.add_argument(
        "--fail-on",
        choices=("warning", "critical"),
        help="exit 1 if a finding of this severity (or worse) is raised",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from vla_eval.diagnose import offline

    counts = offline.parse_task_counts(args.task_counts) if args.task_counts else None
    result = offline.diagnose_path(args.path, task_counts=counts)
    if args.json:
        from vla_eval.results import provenance

        print_json({**result, "provenance": provenance()})
    else:
        print(offline.format_result(result))
    severities = {f["severity"] for f in result["findings"]}
    failing = {"warning": {"warning", "critical"}, "critical": {"critical"}}.get(args.fail_on)
    return 1 if failing and severities & failing else 0
