"""Run the detectors after the fact: over a finished run's metrics or over rollouts.

``metrics.jsonl`` (one JSON object per logged step; schema in docs/diagnose.md) is
replayed through the same detectors the live `Diagnose` uses, so a run judged
offline gets the findings it would have got live (except the ones that need action
arrays, which are not logged). An episodes file whose records carry the executed
``actions`` is judged for rollout jitter, one verdict per policy; it is read through
`vla_eval.episodes`, so its records are validated like every other episode file. A
run directory written by the reference trainer also gives, through its ``run.json``,
the dataset's task counts and the thresholds the trainer judged with. This module
uses the standard library and numpy only; it must not import torch.
"""

from __future__ import annotations

import math
import warnings as warnings_mod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.diagnose.detectors import (
    CROSS_ENTROPY_THRESHOLDS,
    ActionJitter,
    DetectorSet,
    Signals,
    default_detectors,
)
from vla_eval.diagnose.findings import Finding
from vla_eval.errors import DataError, UsageError
from vla_eval.jsonl import TruncatedLineWarning, iter_jsonl

SCHEMA = "vla-eval/diagnose/1"
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "run.json"
TRAIN_SCHEMA = "vla-eval/train/1"  # run.json of the reference trainer
_EVAL_KEYS = ("heldout_loss", "web_loss", "web_accuracy")
CHECK_EVERY = 10  # Diagnose's default check_every
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf}


def read_jsonl(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """(line number, object) for each record, and warnings.

    Read with `vla_eval.jsonl.iter_jsonl`: a last line cut short by a crash is skipped
    with a warning (returned here, not raised); any other malformed line is an error
    naming the line.

    Raises:
        UsageError: the file cannot be read.
        DataError: a malformed line, or a line that is not a JSON object.
    """
    with warnings_mod.catch_warnings(record=True) as caught:
        warnings_mod.simplefilter("always", TruncatedLineWarning)
        records = list(iter_jsonl(path))
    return records, _truncation_warnings(caught)


def _truncation_warnings(caught: list[warnings_mod.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, TruncatedLineWarning)]


def _number(value: Any, where: str, key: str) -> float | None:
    """A logged number; null means "not measured"; "nan"/"inf" strings are non-finite."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise DataError(f"{where}: '{key}' must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in _NONFINITE:
        return _NONFINITE[value.strip().lower()]
    raise DataError(f"{where}: '{key}' must be a number, got {value!r}")


def _mapping(value: Any, where: str, key: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DataError(f"{where}: '{key}' must be an object {{task: number}}, got {value!r}")
    out = {}
    for task, v in value.items():
        x = _number(v, where, f"{key}.{task}")
        if x is not None:
            out[str(task)] = x
    return out


def diagnose_metrics(
    path: str | Path,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    task_counts: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Replay a run's ``metrics.jsonl`` through the detectors.

    Args:
        path: the metrics file.
        thresholds: per-symptom overrides (see `default_detectors`).
        task_counts: dataset counts per task, for the temperature suggestion.

    Returns:
        ``{"kind": "metrics", "records": n, "findings": [Finding...], "warnings": [...]}``.

    Raises:
        DataError: a malformed record or a file with no records.
    """
    path = Path(path)
    records, warnings = read_jsonl(path)
    if not records:
        raise DataError(f"{path} has no records; expected one JSON object per logged step")
    detectors = replay(((f"{path}:{line}", rec) for line, rec in records), thresholds, task_counts)
    return {
        "kind": "metrics",
        "records": len(records),
        "findings": detectors.findings,
        "warnings": warnings,
        "thresholds": detectors.thresholds(),
    }


def replay(
    records: Iterable[tuple[str, Mapping[str, Any]]],
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    task_counts: Mapping[str, float] | None = None,
) -> DetectorSet:
    """Feed ``(where, record)`` pairs, in ``metrics.jsonl`` shape, to the detectors.

    ``where`` names the record in error messages (``file:line``).

    Raises:
        DataError: a malformed record.
    """
    detectors = DetectorSet(default_detectors(thresholds, task_counts))
    task_sums: dict[str, list[float]] = {}
    last_step = None
    for index, (where, rec) in enumerate(records):
        step = rec.get("step")
        last_step = _check_step(step, last_step, where)
        param = rec.get("nonfinite_param")
        if param is not None and not isinstance(param, str):
            raise DataError(f"{where}: 'nonfinite_param' must be a string, got {param!r}")
        losses = _mapping(rec.get("loss_per_task"), where, "loss_per_task")
        counts = _mapping(rec.get("samples_per_task"), where, "samples_per_task")
        for t, v in losses.items():
            n = counts.get(t, 1.0)
            if n > 0:
                sums = task_sums.setdefault(t, [0.0, 0.0])
                sums[0] += n
                sums[1] += v * n
        # per-task losses reach the detector in blocks of CHECK_EVERY steps, as the
        # live monitor's checks do, so both forget at the same pace
        task_errors = None
        if task_sums and (index + 1) % CHECK_EVERY == 0:
            task_errors = {t: (n, total, None) for t, (n, total) in task_sums.items()}
            task_sums = {}
        # a run that mixes web data logs its action loss apart: that is what the
        # held-out (action) loss is compared with, and what the live trainer judges
        loss_key = "robot_loss" if rec.get("robot_loss") is not None else "loss"
        detectors.feed(
            Signals(
                step,
                loss=_number(rec.get(loss_key), where, loss_key),
                grad_norm=_number(rec.get("grad_norm"), where, "grad_norm"),
                nonfinite_param=param,
                lr=_number(rec.get("lr"), where, "lr"),
                task_errors=task_errors,
            )
        )
        evals = _eval_signals(step, rec, where)
        if evals is not None:
            detectors.feed(evals)
    return detectors


def _eval_signals(step: int, rec: Mapping[str, Any], where: str) -> Signals | None:
    """The eval-pass signals of a record, or None if it holds none."""
    evals = {k: _number(rec.get(k), where, k) for k in (*_EVAL_KEYS, "train_loss")}
    per_task = _mapping(rec.get("heldout_loss_per_task"), where, "heldout_loss_per_task")
    if not per_task and all(evals[k] is None for k in _EVAL_KEYS):
        return None
    acc = evals["web_accuracy"]
    if acc is not None and not 0.0 <= acc <= 1.0:
        raise DataError(f"{where}: 'web_accuracy' must be a fraction in [0, 1], got {acc}")
    n_web = rec.get("web_examples")
    if n_web is not None and (isinstance(n_web, bool) or not isinstance(n_web, int) or n_web < 1):
        raise DataError(f"{where}: 'web_examples' must be a positive integer, got {n_web!r}")
    return Signals(step, web_examples=n_web, heldout_task_loss=per_task or None, **evals)


def diagnose_episodes(
    path: str | Path, thresholds: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Judge the executed actions of rollouts for jitter, one verdict per policy.

    Records are read with `vla_eval.episodes.iter_episodes` (validated; a duplicate
    episode is an error; a truncated last line is skipped with a warning). Each
    record needs ``actions``: a list of equal-length action vectors (time, dim).
    Records without ``actions`` are counted and skipped.

    Raises:
        DataError: a malformed record or malformed actions, or no record with actions.
    """
    from vla_eval.episodes import iter_episodes
    from vla_eval.jsonl import TruncatedLineWarning

    path = Path(path)
    lines = _record_lines(path)
    groups: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    skipped = records = 0
    warnings: list[str] = []
    with warnings_mod.catch_warnings(record=True) as caught:
        warnings_mod.simplefilter("always", TruncatedLineWarning)
        for line, episode in zip(lines, iter_episodes([path]), strict=False):
            records += 1
            if "actions" not in episode.extra:
                skipped += 1
                continue
            actions = _actions(episode.extra["actions"], f"{path}:{line}")
            policy = episode.policy or "policy"
            seqs, labels = groups.setdefault(policy, ([], []))
            seqs.append(actions)
            labels.append(f"{episode.task}/seed {episode.seed}")
    warnings += _truncation_warnings(caught)
    if not groups:
        raise DataError(
            f"no episode in {path} has an 'actions' list; rollout jitter needs the executed "
            "actions of each episode"
        )
    if skipped:
        warnings.append(f"{path}: {skipped} episode(s) without 'actions' were skipped")
    kwargs = dict((thresholds or {}).get("action_jitter", {}))
    findings: list[Finding] = []
    for policy, (seqs, labels) in groups.items():
        detector = ActionJitter(**kwargs)
        found = detector.update(
            Signals(None, rollout_actions=seqs, rollout_labels=[f"{policy} {x}" for x in labels])
        )
        if found is not None:
            findings.append(found)
    return {
        "kind": "episodes",
        "records": records,
        "policies": sorted(groups),
        "findings": findings,
        "warnings": warnings,
    }


def _record_lines(path: Path) -> list[int]:
    """1-based numbers of the records' lines, in order (the episode reader's records)."""
    with warnings_mod.catch_warnings():
        warnings_mod.simplefilter("ignore", TruncatedLineWarning)  # the reader warns once
        return [line for line, _ in iter_jsonl(path)]


def _actions(value: Any, where: str) -> np.ndarray:
    """A rollout's executed actions as a finite (time, dim) array."""
    try:
        actions = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: 'actions' must be a list of equal-length number lists") from None
    if actions.ndim == 1:
        actions = actions[:, None]
    if actions.ndim != 2 or not np.isfinite(actions).all():
        raise DataError(
            f"{where}: 'actions' must be a (time, dim) list of finite numbers, "
            f"got shape {actions.shape}"
        )
    return actions


def _check_step(step: Any, last: int | None, where: str) -> int:
    """A record's step: an integer >= 0, above the previous record's (one record per step)."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise DataError(f"{where}: 'step' must be an integer >= 0, got {step!r}")
    if last is not None and step <= last:  # two writers, or a bad merge of logs
        what = "repeats" if step == last else "goes back from"
        raise DataError(
            f"{where}: step {step} {what} step {last} of the line before; steps must increase"
        )
    return step


def _looks_like_episodes(path: Path) -> bool:
    """Whether the first record of a JSON Lines file is an episode (else: metrics)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first_line = next((line for line in fh if line.strip()), None)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    if first_line is None:
        raise DataError(f"{path} has no records")
    from vla_eval.inputs import StrictJSONError
    from vla_eval.inputs import loads as strict_loads

    try:
        first = strict_loads(first_line)
    except (ValueError, StrictJSONError):
        return False  # the metrics reader names the bad line
    if not isinstance(first, dict):
        return False
    return "actions" in first or str(first.get("schema", "")).startswith("vla-eval/episode")


def trainer_run(run_dir: Path) -> dict[str, Any] | None:
    """The reference trainer's ``run.json`` in ``run_dir``, or None if there is none.

    Raises:
        DataError: a ``run.json`` that is not a JSON object.
    """
    path = run_dir / RUN_FILE
    if not path.is_file():
        return None
    from vla_eval.inputs import load_json_file

    run = load_json_file(path)  # strict: duplicate keys, depth and size refused
    if not isinstance(run, dict):
        raise DataError(f"{path}: expected a JSON object")
    return run if run.get("schema") == TRAIN_SCHEMA else None


def diagnose_path(
    path: str | Path | None,
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    task_counts: Mapping[str, float] | None = None,
    *,
    mapping: Mapping[str, str] | None = None,
    mlflow_uri: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Diagnose a run directory (its metrics.jsonl), a metrics or episodes file, or
    another tool's log: a TensorBoard directory, a Lightning metrics.csv, an MLflow run.

    Args:
        path: what to judge (None with ``mlflow_uri``).
        thresholds: per-symptom overrides.
        task_counts: dataset counts per task, for the temperature suggestion.
        mapping: signal -> tag of a foreign log (see `vla_eval.diagnose.logs`).
        mlflow_uri, run_id: an MLflow run to read.

    Returns:
        A result with ``schema`` ``vla-eval/diagnose/1``, ``source``, ``kind``,
        ``records``, ``findings`` (as dicts), ``counts`` per symptom and ``warnings``;
        a foreign log adds ``format`` and ``signals`` (signal -> tag read).

    Raises:
        UsageError: the path does not exist, is of no known format, or lacks a tag.
        DataError: malformed content.
    """
    from vla_eval.diagnose import logs

    foreign = mlflow_uri is not None or run_id is not None
    if not foreign and path is not None:
        path = Path(path)
        own = (path.is_dir() and (path / METRICS_FILE).is_file()) or path.suffix == ".jsonl"
        foreign = not own and logs.detect(path) is not None
    if foreign:
        log = logs.read_log(path, mapping, mlflow_uri, run_id)
        result, source = _diagnose_log(log, thresholds, task_counts), log.source
    else:
        if mapping:
            raise UsageError("--map applies to TensorBoard, Lightning CSV and MLflow logs")
        result, source = _diagnose_own(path, thresholds, task_counts)
    findings: list[Finding] = result.pop("findings")
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.symptom] = counts.get(f.symptom, 0) + 1
    return {
        "schema": SCHEMA,
        "source": str(source),
        **result,
        "findings": [f.to_dict() for f in findings],
        "counts": counts,
    }


def _diagnose_log(
    log: Any,
    thresholds: Mapping[str, Mapping[str, Any]] | None,
    task_counts: Mapping[str, float] | None,
) -> dict[str, Any]:
    """Replay a foreign log's records (see `vla_eval.diagnose.logs.Log`)."""
    if not log.records:
        raise DataError(f"{log.source}: its signals {log.signals} hold no values")
    items = ((f"{log.source} step {rec['step']}", rec) for rec in log.records)
    detectors = replay(items, thresholds, task_counts)
    return {
        "kind": "metrics",
        "format": log.format,
        "signals": log.signals,
        "records": len(log.records),
        "findings": detectors.findings,
        "warnings": [],
        "thresholds": detectors.thresholds(),
    }


def _diagnose_own(
    path: Path,
    thresholds: Mapping[str, Mapping[str, Any]] | None,
    task_counts: Mapping[str, float] | None,
) -> tuple[dict[str, Any], Path]:
    """A run directory, a metrics.jsonl or an episodes file: (result, source)."""
    if path.is_dir():
        metrics = path / METRICS_FILE
        if not metrics.is_file():
            raise UsageError(
                f"{path} has no {METRICS_FILE}; pass a run directory written by the trainer, "
                "a metrics.jsonl or an episodes .jsonl, a TensorBoard log directory, a "
                "Lightning metrics.csv or an MLflow store"
            )
        run = trainer_run(path)
        if run is not None:
            # judge as the trainer did live: its thresholds under the user's, its counts
            merged = {k: dict(v) for k, v in CROSS_ENTROPY_THRESHOLDS.items()}
            for symptom, values in (thresholds or {}).items():
                merged.setdefault(symptom, {}).update(values)
            thresholds = merged
            counts = run.get("task_counts")
            if task_counts is None and isinstance(counts, dict):
                task_counts = {
                    str(k): float(v)
                    for k, v in counts.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                } or None
        return diagnose_metrics(metrics, thresholds, task_counts), metrics
    if path.is_file():
        if _looks_like_episodes(path):
            if task_counts:
                raise UsageError("--task-counts applies to training metrics, not to episodes")
            return diagnose_episodes(path, thresholds), path
        return diagnose_metrics(path, thresholds, task_counts), path
    if path.exists() or path.is_symlink():  # a FIFO, a device, a symlink loop
        from vla_eval.inputs import regular_file

        regular_file(path, str(path), "run directory or .jsonl file")
    raise UsageError(f"{path} does not exist")


def format_result(result: Mapping[str, Any]) -> str:
    """Human-readable lines: one per finding, then a summary."""
    lines = [str(Finding.from_dict(f)) for f in result["findings"]]
    what = "logged steps" if result["kind"] == "metrics" else "episodes"
    n = len(result["findings"])
    lines.append(
        f"{n} finding{'s' if n != 1 else ''} in {result['records']} {what} ({result['source']})"
        if n
        else f"no findings in {result['records']} {what} ({result['source']})"
    )
    if result.get("signals"):
        read = ", ".join(f"{k} <- {v}" for k, v in result["signals"].items())
        lines.append(f"read from the {result['format']} log: {read}")
    lines.extend(f"warning: {w}" for w in result.get("warnings", []))
    return "\n".join(lines)


def parse_task_counts(text: str) -> dict[str, float]:
    """``pick=50000,place=30000`` -> {"pick": 50000.0, "place": 30000.0}.

    >>> parse_task_counts("pick=50000, pour=500")
    {'pick': 50000.0, 'pour': 500.0}
    """
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            count = float(value)
        except ValueError:
            count = math.nan
        if not sep or not name or not math.isfinite(count) or count <= 0:
            raise UsageError(
                f"--task-counts: expected task=count pairs with positive counts, got {part!r}"
            )
        if name in out:
            raise UsageError(f"--task-counts: task {name!r} given twice")
        out[name] = count
    return out
