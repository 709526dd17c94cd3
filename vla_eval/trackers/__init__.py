"""Experiment trackers: TensorBoard, MLflow and Weights & Biases behind one small interface.

`open_tracker(name, run_dir, ...)` is the one door from a tracker's name to a started
`Tracker`; it fails with one `UsageError` line when the tracker's library is missing or
its server cannot be reached, so a command refuses before it does any work. Every
tracker keeps its data in the run folder by default (TensorBoard event files, a SQLite
MLflow store, an offline W&B run). `log_success_report` logs a success report's rates
with their intervals. Importing this package loads none of the trackers' libraries;
it depends on the findings' vocabulary of `vla_eval.diagnose` and nothing above it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError
from vla_eval.trackers.base import SEVERITY_LEVEL, Tracker, finding_text, numbers
from vla_eval.trackers.report import log_success_report, success_metrics

#: The trackers `--tracker` and a protocol's ``[train.tracker]`` name.
TRACKERS: tuple[str, ...] = ("tensorboard", "mlflow", "wandb")

__all__ = [
    "SEVERITY_LEVEL",
    "TRACKERS",
    "Tracker",
    "finding_text",
    "log_success_report",
    "numbers",
    "open_tracker",
    "success_metrics",
    "view_hint",
]


def open_tracker(
    name: str,
    run_dir: str | os.PathLike[str],
    *,
    uri: str | None = None,
    project: str | None = None,
    run_name: str = "run",
    config: Mapping[str, Any] | None = None,
    resume_step: int | None = None,
) -> Tracker:
    """Start a run in the tracker `name`, logging `config` as its parameters.

    Args:
        name: ``tensorboard``, ``mlflow`` or ``wandb``.
        run_dir: the run folder; each tracker's local data goes inside it by default.
        uri: TensorBoard: a log folder; MLflow: a tracking URI; W&B: a server URL (online).
        project: the MLflow experiment or W&B project (default ``vla-eval``); TensorBoard
            has none and ignores it.
        run_name: the run's name in the tracker.
        config: the run's configuration.
        resume_step: the step a resumed training run starts from (TensorBoard drops what
            was logged from that step on before the interruption).

    Raises:
        UsageError: an unknown name, the library is not installed, the server cannot be
            reached or the store refuses the run.

    Example:
        >>> import tempfile
        >>> with open_tracker("tensorboard", tempfile.mkdtemp()) as tracker:
        ...     tracker.log_scalars({"train/loss": 0.5}, step=0)
    """
    run_dir = Path(run_dir)
    # a resumed training run continues its MLflow or W&B run (TensorBoard: its log folder)
    earlier = _earlier_run(run_dir, name, uri, project) if resume_step is not None else None
    if name == "tensorboard":
        from vla_eval.trackers.tensorboard import open_tensorboard

        tracker: Tracker = open_tensorboard(run_dir, uri, resume_step)
    elif name == "mlflow":
        from vla_eval.trackers.mlflow import open_mlflow

        tracker = open_mlflow(run_dir, uri, project, run_name, resume_id=earlier)
    elif name == "wandb":
        from vla_eval.trackers.wandb import open_wandb

        tracker = open_wandb(run_dir, uri, project, run_name, dict(config or {}), resume_id=earlier)
    else:
        raise UsageError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
    if name != "tensorboard":
        _remember_run(run_dir, name, uri, project, tracker.run_id)  # type: ignore[attr-defined]
    if config and name != "wandb":  # W&B takes the config when its run starts
        tracker.log_params(config)
    return tracker


#: Where a run folder records its MLflow or W&B run, so a resumed run continues it.
RUN_RECORD = "tracker.json"
RUN_RECORD_SCHEMA = "vla-eval/tracker-run/1"


def _earlier_run(run_dir: Path, name: str, uri: str | None, project: str | None) -> str | None:
    """The id of the tracker run this folder started before, when it is the same tracker,
    URI and project (else None: a new run)."""
    from vla_eval.inputs import load_json_file

    path = run_dir / RUN_RECORD
    if not path.is_file():
        return None
    record = load_json_file(path)
    same = isinstance(record, dict) and record.get("schema") == RUN_RECORD_SCHEMA
    if not same or [record.get(k) for k in ("name", "uri", "project")] != [name, uri, project]:
        return None
    run_id = record.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def _remember_run(
    run_dir: Path, name: str, uri: str | None, project: str | None, run_id: str
) -> None:
    from vla_eval.results import write_json

    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"name": name, "uri": uri, "project": project, "run_id": run_id}
    write_json(run_dir / RUN_RECORD, {"schema": RUN_RECORD_SCHEMA, **record})


def view_hint(name: str, run_dir: str | os.PathLike[str], uri: str | None = None) -> str:
    """The command that shows what `name` logged for `run_dir` (a line for the user).

    >>> view_hint("tensorboard", "runs/smoke")
    'tensorboard --logdir runs/smoke/tensorboard'
    """
    run_dir = Path(run_dir)
    if name == "tensorboard":
        return f"tensorboard --logdir {uri or run_dir / 'tensorboard'}"
    if name == "mlflow":
        store = uri or f"sqlite:///{run_dir.resolve() / 'mlflow' / 'mlflow.db'}"
        return f"mlflow ui --backend-store-uri {store}"
    if name == "wandb":
        return f"wandb sync {run_dir / 'wandb'}/offline-run-*" if uri is None else uri
    raise UsageError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")
