"""Readers for other tools' episode outputs: LeRobot's ``eval_info.json`` and plain CSV.

Each reader validates every row, names the file and row of anything wrong, and adds
its episodes to a sink (`vla_eval.episodes.table.Sink`) like the vla-eval JSON Lines
reader does, so a report reads them all the same way. What a file does not record is
never invented silently: a default split or task, and seeds that only number a file's
episodes, are written to the sink's notes, which the report prints as warnings.

LeRobot writes ``eval_info.json`` with ``json.dump(info, f, indent=2)`` in two layouts:

* single environment (``eval_policy`` in ``lerobot/scripts/eval.py``, and in the
  single-env ``lerobot-eval`` before suites): ``{"per_episode": [{"episode_ix",
  "sum_reward", "max_reward", "success", "seed"}, ...], "aggregated": {"avg_sum_reward",
  "avg_max_reward", "pc_success", "eval_s", "eval_ep_s"}, "video_paths": [...]}``; the
  seed is ``--seed`` plus the episode index, or null when run without a seed. No task
  or split is recorded.
* suites (``eval_policy_all`` in ``lerobot_eval.py``, e.g. LIBERO): ``{"per_task":
  [{"task_group", "task_id", "metrics": {"sum_rewards", "max_rewards", "successes",
  "video_paths", ...}}, ...], "per_group": {group: {"pc_success", "n_episodes", ...}},
  "overall": {"pc_success", "n_episodes", ...}}``. Every task's episodes start from the
  same ``--seed`` and count up, but the file does not record that seed.

The counts a file states about itself (``pc_success``, ``n_episodes``) are checked
against its episodes. Standard library plus the episode table; never imports torch.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_eval.episodes.table import Sink
from vla_eval.errors import DataError

_TRUE = frozenset({"1", "true", "t", "yes", "y", "success", "succeeded"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "failure", "failed"})
_CSV_REQUIRED = ("task", "seed", "success")
_CSV_OPTIONAL = ("split", "policy", "group")


@dataclass(frozen=True)
class ReadOptions:
    """What to assume where a file records nothing.

    Attributes:
        split: split of episodes from files without one (LeRobot, CSV without a column).
        task: task of LeRobot's single-environment file, which names none.
        lerobot_seed: the ``--seed`` of a LeRobot suite evaluation (its file has none).
    """

    split: str = "default"
    task: str = "default"
    lerobot_seed: int | None = None


def read_csv(path: Path, name: str, out: Sink, options: ReadOptions) -> None:
    """A CSV with columns task, seed, success and optionally split, policy and group.

    Success may be written 1/0, true/false (any case), 1.0/0.0 or yes/no; a file
    without a split column puts every row in ``options.split`` (noted).
    """
    src = out.start_file(name)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{name}:1: malformed CSV header ({exc})") from None
        idx = _csv_columns(header, name)
        if "split" not in idx:
            out.note(
                f"{name}: no split column; its rows are in split {options.split!r} "
                "(the default split)"
            )
        try:
            for row in reader:
                if row and any(c.strip() for c in row):
                    line = reader.line_num
                    fields = _csv_row(row, idx, len(header), f"{name}:{line}", out, options)
                    out.add(*fields, src, line)
        except csv.Error as exc:
            raise DataError(f"{name}:{reader.line_num}: malformed CSV ({exc})") from None


def _csv_columns(header: list[str], name: str) -> dict[str, int]:
    cols = [h.strip().lower() for h in header]
    missing = [c for c in _CSV_REQUIRED if c not in cols]
    if missing:
        raise DataError(
            f"{name}:1: CSV header lacks column(s) {', '.join(missing)}; need "
            f"{', '.join(_CSV_REQUIRED)} (and optionally {', '.join(_CSV_OPTIONAL)})"
        )
    repeated = [c for c in (*_CSV_REQUIRED, *_CSV_OPTIONAL) if cols.count(c) > 1]
    if repeated:
        raise DataError(
            f"{name}:1: CSV header has column {repeated[0]!r} {cols.count(repeated[0])} "
            "times; which one holds the value would be a guess"
        )
    return {c: cols.index(c) for c in (*_CSV_REQUIRED, *_CSV_OPTIONAL) if c in cols}


def _csv_row(
    row: list[str], idx: dict[str, int], width: int, where: str, out: Sink, options: ReadOptions
) -> tuple[str, str, str, int, bool]:
    """One validated CSV row as (policy, task, split, seed, success)."""
    if len(row) != width:
        raise DataError(f"{where}: expected {width} columns, found {len(row)}")
    task = row[idx["task"]].strip()
    split = row[idx["split"]].strip() if "split" in idx else options.split
    if not task or not split:
        raise DataError(f"{where}: empty task or split")
    seed_text = row[idx["seed"]].strip()
    try:
        seed = int(seed_text)
    except ValueError:
        raise DataError(f"{where}: seed must be an integer, got {seed_text!r}") from None
    success = parse_success(row[idx["success"]], where)
    policy = row[idx["policy"]].strip() if "policy" in idx else ""
    if out.policy_name is not None:
        policy = out.policy_name
    if "group" in idx and row[idx["group"]].strip():
        out.set_group(task, row[idx["group"]].strip(), where)
    return policy, task, split, seed, success


def parse_success(text: str, where: str) -> bool:
    """A CSV success value: 1/0, true/false, yes/no (any case), or a number equal to 1 or 0.

    >>> [parse_success(v, "x") for v in ("1", "TRUE", "0.0", "1.00", " false ")]
    [True, True, False, True, False]
    """
    flag = text.strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    try:
        value = float(flag)
    except ValueError:
        value = math.nan
    if value == 1.0:
        return True
    if value == 0.0:
        return False
    raise DataError(f"{where}: success must be 1/0, true/false or 1.0/0.0, got {text!r}")


def read_lerobot(name: str, out: Sink, info: Any, options: ReadOptions) -> None:
    """LeRobot ``eval_info.json``, either layout (see the module docstring)."""
    if isinstance(info, dict) and isinstance(info.get("per_episode"), list):
        _read_single_env(name, out, info, options)
    elif isinstance(info, dict) and isinstance(info.get("per_task"), list):
        _read_suite(name, out, info, options)
    else:
        raise DataError(
            f"{name}: not a LeRobot eval_info.json (no 'per_episode' or 'per_task' list) "
            "and not a vla-eval episode file"
        )


def _read_single_env(name: str, out: Sink, info: dict[str, Any], options: ReadOptions) -> None:
    """The ``per_episode`` layout: one task, seeds recorded (or null without ``--seed``)."""
    rows = info["per_episode"]
    for i, ep in enumerate(rows):
        if not isinstance(ep, dict) or "success" not in ep:
            raise DataError(f"{name}: per_episode[{i}]: expected an object with a 'success' key")
        for key in ("seed", "episode_ix"):
            value = ep.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise DataError(
                    f"{name}: per_episode[{i}]: {key} must be an integer or null, got {value!r}"
                )
    known = all(ep.get("seed") is not None for ep in rows)
    src = out.start_file(name, seeds_known=known)
    policy = out.policy_name or ""
    wins = 0
    for i, ep in enumerate(rows):
        success = _lerobot_bool(ep["success"], f"{name}: per_episode[{i}].success")
        wins += success
        seed = ep["seed"] if known else ep.get("episode_ix", i)
        if seed is None:
            seed = i
        out.add(policy, options.task, options.split, seed, success, src, i + 1)
    _check_rate(name, "aggregated", info.get("aggregated"), wins, len(rows), with_count=False)
    out.note(
        f"{name}: LeRobot's single-environment eval_info.json names no task or split; its "
        f"{len(rows)} episodes are task {options.task!r}, split {options.split!r}"
        + (
            ""
            if known
            else "; it records no seeds (run without --seed): they pair with no other file's"
        )
    )


def _read_suite(name: str, out: Sink, info: dict[str, Any], options: ReadOptions) -> None:
    """The ``per_task``/``per_group``/``overall`` layout: tasks in groups, no seeds recorded."""
    known = options.lerobot_seed is not None
    base = options.lerobot_seed or 0
    src = out.start_file(name, seeds_known=known)
    policy = out.policy_name or ""
    per_group: dict[str, list[int]] = {}
    row = 0
    for t, entry in enumerate(info["per_task"]):
        where = f"{name}: per_task[{t}]"
        task, group, successes = _suite_entry(entry, where)
        out.set_group(task, group, where)
        counts = per_group.setdefault(group, [0, 0])
        for i, flag in enumerate(successes):
            row += 1
            success = _lerobot_bool(flag, f"{where}.metrics.successes[{i}]")
            counts[0] += success
            counts[1] += 1
            out.add(policy, task, options.split, base + i, success, src, row)
    stated = info.get("per_group")
    if isinstance(stated, dict):
        for group, (wins, n) in per_group.items():
            _check_rate(name, f"per_group.{group}", stated.get(group), wins, n, with_count=True)
    total = [sum(c[0] for c in per_group.values()), sum(c[1] for c in per_group.values())]
    _check_rate(name, "overall", info.get("overall"), *total, with_count=True)
    seeds = (
        f"seeds are --lerobot-seed {base} plus the episode's index"
        if known
        else "it records no seeds, so its episodes pair with no other file's (give "
        "--lerobot-seed, the --seed lerobot-eval ran with, to pair runs with the same seed)"
    )
    out.note(
        f"{name}: LeRobot's suite eval_info.json records no split; its {row} episodes are "
        f"in split {options.split!r}; {seeds}"
    )


def _suite_entry(entry: Any, where: str) -> tuple[str, str, list[Any]]:
    """(task, group, successes) of one ``per_task`` entry; the task is ``group/task_id``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
        raise DataError(f"{where}: expected an object with 'metrics'")
    group = entry.get("task_group")
    if not isinstance(group, str) or not group:
        raise DataError(f"{where}: task_group must be a non-empty string, got {group!r}")
    task_id = entry.get("task_id")
    if isinstance(task_id, bool) or not isinstance(task_id, (int, str)) or task_id == "":
        raise DataError(f"{where}: task_id must be an integer or a name, got {task_id!r}")
    successes = entry["metrics"].get("successes")
    if not isinstance(successes, list):
        raise DataError(f"{where}: metrics.successes must be a list")
    return f"{group}/{task_id}", group, successes


def _check_rate(name: str, key: str, stated: Any, wins: int, n: int, *, with_count: bool) -> None:
    """The file's own summary (``pc_success``, ``n_episodes``) must match its episodes."""
    if not isinstance(stated, dict):
        return
    count = stated.get("n_episodes")
    if with_count and count is not None and count != n:
        raise DataError(
            f"{name}: {key}.n_episodes is {count!r} but the file holds {n} episodes there; "
            "the file is inconsistent (edited or cut?)"
        )
    pc = stated.get("pc_success")
    if n and isinstance(pc, (int, float)) and not isinstance(pc, bool) and math.isfinite(pc):
        if abs(pc - 100 * wins / n) > 1e-6 * max(1.0, abs(pc)):
            raise DataError(
                f"{name}: {key}.pc_success is {pc!r} but its episodes have {wins} successes "
                f"in {n} ({100 * wins / n:.6g}%); the file is inconsistent (edited or cut?)"
            )


def _lerobot_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: success must be true/false, got {value!r}")
