"""`vla-eval diagnose`: the failure-table detectors over a finished run or over rollouts.

Reads logged metrics (its own metrics.jsonl, TensorBoard, Lightning CSV, MLflow) and
episodes; must not import torch or the trainer.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import counts_text, print_json

NAME = "diagnose"
HELP = "failure-table detectors over a finished run's metrics or over rollouts"
DESCRIPTION = (
    "Run the training-failure detectors offline over RUN_DIR/metrics.jsonl "
    "(or a metrics .jsonl), a TensorBoard log directory, a Lightning metrics.csv or an "
    "MLflow run, or check an episodes .jsonl whose records carry 'actions' for rollout "
    "jitter. Example: vla-eval diagnose runs/quickstart"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path",
        nargs="?",
        metavar="RUN_DIR|FILE",
        help="run directory, metrics or episodes .jsonl, TensorBoard log directory, "
        "Lightning metrics.csv, MLflow store (mlflow.db, mlruns) or run folder",
    )
    p.add_argument(
        "--map",
        action="append",
        metavar="SIGNAL=TAG",
        help="read this tag as this signal (repeatable), e.g. --map loss=train/loss "
        "--map heldout_loss=val/loss --map 'loss_per_task=loss/*'",
    )
    p.add_argument("--mlflow-uri", help="MLflow tracking URI of the run to read (with --run-id)")
    p.add_argument("--run-id", help="the MLflow run to read")
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
    from vla_eval.diagnose import logs, offline
    from vla_eval.errors import UsageError

    if args.path is None and args.mlflow_uri is None:
        raise UsageError("diagnose: pass a run directory or log, or --mlflow-uri URI --run-id ID")
    counts = offline.parse_task_counts(args.task_counts) if args.task_counts else None
    result = offline.diagnose_path(
        args.path,
        task_counts=counts,
        mapping=logs.parse_map(args.map),
        mlflow_uri=args.mlflow_uri,
        run_id=args.run_id,
    )
    if args.json:
        from vla_eval.results import provenance

        print_json({**result, "provenance": provenance()})
    else:
        print(offline.format_result(result))
    severities = {f["severity"] for f in result["findings"]}
    failing = {"warning": {"warning", "critical"}, "critical": {"critical"}}.get(args.fail_on)
    return 1 if failing and severities & failing else 0
