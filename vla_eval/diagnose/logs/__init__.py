"""Other tools' training logs as the records `vla-eval diagnose` replays.

A TensorBoard log directory, a Lightning CSVLogger ``metrics.csv`` and an MLflow run
each hold named series of (step, value). This package reads them with the tools' own
readers (`tensorboard`'s ``EventAccumulator``, the standard ``csv`` module as Lightning
writes it, ``MlflowClient``), picks the series that are Diagnose's signals (by default
the names Lightning and Hugging Face log; ``--map signal=tag`` names others), and
merges them per step into records shaped like a ``metrics.jsonl`` line. It must not
import torch; each reader imports its library inside the function that needs it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError

# signal -> tags tried in this order: the reference trainer's, Lightning's (as logged
# with self.log, on_step/on_epoch suffixes, LearningRateMonitor), Hugging Face's (the
# Trainer's log keys, and the "train/" and "eval/" names its TensorBoard writer uses)
DEFAULT_TAGS: dict[str, tuple[str, ...]] = {
    "loss": ("loss", "train_loss", "train/loss", "train_loss_step", "loss_step", "training_loss"),
    "robot_loss": ("robot_loss", "train/robot_loss", "train_robot_loss"),
    "grad_norm": ("grad_norm", "train/grad_norm", "grad_2.0_norm_total", "grad_norm/total"),
    "lr": ("lr", "learning_rate", "train/learning_rate", "train/lr", "lr-*"),
    "heldout_loss": (
        "heldout_loss",
        "val_loss",
        "val/loss",
        "eval_loss",
        "eval/loss",
        "valid_loss",
    ),
    "web_loss": ("web_loss", "val_web_loss", "val/web_loss", "eval_web_loss", "eval/web_loss"),
    "web_accuracy": (
        "web_accuracy",
        "val_web_accuracy",
        "val/web_accuracy",
        "eval_web_accuracy",
        "eval/web_accuracy",
    ),
    "train_loss": (),  # an eval record's training loss: only when mapped
    # per-task series: "*" is the task's name
    "loss_per_task": ("loss_per_task/*", "train_loss/*", "train/loss/*"),
    "heldout_loss_per_task": ("val_loss/*", "val/loss/*", "eval_loss/*", "eval/loss/*"),
}
ALIASES = {"val_loss": "heldout_loss", "eval_loss": "heldout_loss"}
PER_TASK = ("loss_per_task", "heldout_loss_per_task")


@dataclass(frozen=True)
class Series:
    """Every named series of a log: tag -> [(step, value)], in the order logged."""

    source: str
    format: str
    tags: dict[str, list[tuple[int, float]]] = field(repr=False)


@dataclass(frozen=True)
class Log:
    """A foreign log as per-step records, and the tag read for each signal."""

    source: str
    format: str
    records: list[dict[str, Any]]
    signals: dict[str, str]


def parse_map(items: Sequence[str] | None) -> dict[str, str]:
    """``["loss=train/loss", ...]`` -> {signal: tag}; unknown signals are an error.

    >>> parse_map(["loss=train/loss", "val_loss=valid/loss", "loss_per_task=loss_*"])
    {'loss': 'train/loss', 'heldout_loss': 'valid/loss', 'loss_per_task': 'loss_*'}
    """
    out: dict[str, str] = {}
    for item in items or ():
        signal, sep, tag = item.partition("=")
        signal, tag = ALIASES.get(signal.strip(), signal.strip()), tag.strip()
        if not sep or not tag:
            raise UsageError(f"--map: expected signal=tag, got {item!r}")
        if signal not in DEFAULT_TAGS:
            raise UsageError(
                f"--map: unknown signal {signal!r}; signals: {', '.join(DEFAULT_TAGS)}"
            )
        if signal in out:
            raise UsageError(f"--map: signal {signal!r} given twice")
        if signal in PER_TASK and tag.count("*") != 1:
            raise UsageError(f"--map: {signal} needs one '*' standing for the task, got {tag!r}")
        out[signal] = tag
    return out


def detect(path: Path) -> str | None:
    """``tensorboard``, ``csv`` or ``mlflow`` for a log these readers know, else None."""
    if path.is_file():
        if path.name.startswith("events.out.tfevents"):
            return "tensorboard"
        if path.suffix == ".csv":
            return "csv"
        with open(path, "rb") as fh:
            if fh.read(16) == b"SQLite format 3\x00":
                return "mlflow"
        return None
    if not path.is_dir():
        return None
    if (path / "metrics.csv").is_file():
        return "csv"
    if (path / "meta.yaml").is_file() or any(path.glob("*/meta.yaml")):
        return "mlflow"
    if next(path.rglob("events.out.tfevents*"), None) is not None:
        return "tensorboard"
    return None


def read_log(
    path: str | Path | None,
    mapping: Mapping[str, str] | None = None,
    mlflow_uri: str | None = None,
    run_id: str | None = None,
) -> Log:
    """Read a TensorBoard directory, a Lightning ``metrics.csv`` or an MLflow run.

    Args:
        path: the log (directory or file); None with ``mlflow_uri``.
        mapping: signal -> tag (see `parse_map`), over the defaults.
        mlflow_uri: an MLflow tracking URI (with ``run_id``).
        run_id: the MLflow run (needed where the store holds more than one).

    Raises:
        UsageError: a path of no known format, a mapped tag the log lacks, or a log
            with none of the signals (the message lists the tags it has).
    """
    if mlflow_uri is not None or run_id is not None:
        from vla_eval.diagnose.logs.mlflow_run import read_mlflow

        series = read_mlflow(path, mlflow_uri, run_id)
    else:
        path = Path(path)
        kind = detect(path)
        if kind == "tensorboard":
            from vla_eval.diagnose.logs.tensorboard import read_tensorboard

            series = read_tensorboard(path)
        elif kind == "csv":
            from vla_eval.diagnose.logs.lightning_csv import read_csv

            series = read_csv(path / "metrics.csv" if path.is_dir() else path)
        elif kind == "mlflow":
            from vla_eval.diagnose.logs.mlflow_run import read_mlflow

            series = read_mlflow(path, None, None)
        else:
            raise UsageError(
                f"{path}: not a format vla-eval diagnose reads (a run directory with "
                "metrics.jsonl, a metrics or episodes .jsonl, a TensorBoard log directory, "
                "a Lightning metrics.csv, an MLflow store or run)"
            )
    return to_records(series, mapping or {})


def choose_tags(series: Series, mapping: Mapping[str, str]) -> dict[str, str]:
    """signal -> the tag (or per-task pattern) read for it."""
    tags = series.tags
    chosen: dict[str, str] = {}
    for signal, candidates in DEFAULT_TAGS.items():
        if signal in mapping:
            tag = mapping[signal]
            if not _matches(tag, tags):
                raise UsageError(
                    f"{series.source} has no tag {tag!r} (--map {signal}={tag}); "
                    f"its tags: {_listing(tags)}"
                )
            chosen[signal] = tag
            continue
        taken = set(mapping.values())
        for tag in candidates:
            if tag not in taken and _matches(tag, tags):
                chosen[signal] = tag
                break
    if not chosen:
        raise UsageError(
            f"{series.source}: none of its tags is a signal Diagnose reads; its tags: "
            f"{_listing(tags)}; name one with --map, e.g. --map loss=TAG"
        )
    return chosen


def to_records(series: Series, mapping: Mapping[str, str]) -> Log:
    """Merge the chosen series per step into ``metrics.jsonl``-shaped records."""
    chosen = choose_tags(series, mapping)
    by_step: dict[int, dict[str, Any]] = {}
    for signal, pattern in chosen.items():
        matching = sorted(t for t in series.tags if fnmatch.fnmatchcase(t, pattern))
        for tag in matching if signal in PER_TASK else matching[:1]:
            task = _task(pattern, tag) if signal in PER_TASK else None
            if signal in PER_TASK and not task:
                continue
            for step, value in series.tags[tag]:
                rec = by_step.setdefault(step, {"step": step})
                if task is None:
                    rec[signal] = value  # a step logged twice (a resumed run): the last
                else:
                    rec.setdefault(signal, {})[task] = value
    records = [by_step[s] for s in sorted(by_step)]
    return Log(series.source, series.format, records, chosen)


def _matches(pattern: str, tags: Mapping[str, Any]) -> bool:
    return any(fnmatch.fnmatchcase(t, pattern) for t in tags)


def _task(pattern: str, tag: str) -> str:
    """The part of ``tag`` that the '*' of ``pattern`` stands for."""
    head, _, tail = pattern.partition("*")
    return tag[len(head) : len(tag) - len(tail)]


def _listing(tags: Mapping[str, Any], limit: int = 30) -> str:
    names = sorted(tags)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) if names else "(none)"
