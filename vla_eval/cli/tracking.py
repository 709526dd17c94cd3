"""The `--tracker` options the commands share, and how a command opens and feeds one.

`add_tracker_arguments` adds ``--tracker tensorboard|mlflow|wandb``, ``--tracker-uri``
and ``--tracker-project``; `open_tracker` starts the named tracker for a command (None
when no ``--tracker`` was given) and must be called before the command does its work,
so a missing library or an unreachable server is one line and exit 2 first;
`log_success_report` logs a success report and closes the tracker. Stdlib only at
import time: the trackers' libraries load when a tracker is opened.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

TRACKER_CHOICES = ("tensorboard", "mlflow", "wandb")


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    """``--tracker``, ``--tracker-uri`` and ``--tracker-project``."""
    p.add_argument(
        "--tracker",
        choices=TRACKER_CHOICES,
        help="also log to this experiment tracker (its data goes in the run folder unless "
        "--tracker-uri says otherwise; needs pip install 'vla-eval[trackers]')",
    )
    p.add_argument(
        "--tracker-uri",
        metavar="URI",
        help="tensorboard: a log folder; mlflow: a tracking URI (default: a SQLite store in "
        "the run folder); wandb: a server URL to log online (default: offline, no account)",
    )
    p.add_argument(
        "--tracker-project",
        metavar="NAME",
        help="the MLflow experiment or W&B project (default vla-eval)",
    )


def open_tracker(
    args: argparse.Namespace, run_dir: str | os.PathLike[str], config: Mapping[str, Any]
) -> Any:
    """The tracker ``--tracker`` names, started for `run_dir` with `config` as its
    parameters; None when no ``--tracker`` was given.

    Raises:
        UsageError: ``--tracker-uri``/``--tracker-project`` without ``--tracker``, the
            library is missing or the server cannot be reached.
    """
    from vla_eval.errors import UsageError

    if args.tracker is None:
        if args.tracker_uri is not None or args.tracker_project is not None:
            raise UsageError("--tracker-uri and --tracker-project need --tracker NAME")
        return None
    from vla_eval import trackers

    name = str(config.get("name") or config.get("command") or "run")
    return trackers.open_tracker(
        args.tracker,
        run_dir,
        uri=args.tracker_uri,
        project=args.tracker_project,
        run_name=name,
        config=config,
    )


def log_success_report(tracker: Any, report: Mapping[str, Any], step: int = 0) -> None:
    """Log a success report (rates with their interval bounds per group and split, the
    pooled ones, the gap) and close the tracker; nothing when `tracker` is None."""
    if tracker is None:
        return
    from vla_eval.trackers import log_success_report as log_report

    log_report(tracker, report, step)
    tracker.close("finished")
