"""Readers for other tools' episode outputs: LeRobot's ``eval_info.json`` and plain CSV.

Each reader validates every row and names the file and row of anything wrong, and
adds its episodes to a `Collector` like the vla-eval JSON Lines reader does, so a
report reads them all the same way. Standard library plus the episode table; never
imports torch.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from vla_eval.episodes.record import REQUIRED
from vla_eval.episodes.table import Collector
from vla_eval.errors import DataError

_TRUE = frozenset({"1", "true", "t", "yes", "y", "success", "succeeded"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "failure", "failed"})


def read_csv(path: Path, name: str, out: Collector) -> None:
    """A CSV with columns task, split, seed, success (and optionally policy), each once."""
    src = out.start_file(name)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{name}:1: malformed CSV header ({exc})") from None
        cols = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise DataError(
                f"{name}:1: CSV header lacks column(s) {', '.join(missing)}; "
                f"need {', '.join(REQUIRED)} (and optionally policy)"
            )
        repeated = [c for c in (*REQUIRED, "policy") if cols.count(c) > 1]
        if repeated:
            raise DataError(
                f"{name}:1: CSV header has column {repeated[0]!r} {cols.count(repeated[0])} "
                "times; which one holds the value would be a guess"
            )
        idx = {c: cols.index(c) for c in (*REQUIRED, "policy") if c in cols}
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                where = f"{name}:{line}"
                if len(row) != len(cols):
                    raise DataError(f"{where}: expected {len(cols)} columns, found {len(row)}")
                task, split = row[idx["task"]].strip(), row[idx["split"]].strip()
                if not task or not split:
                    raise DataError(f"{where}: empty task or split")
                seed_text = row[idx["seed"]].strip()
                try:
                    seed = int(seed_text)
                except ValueError:
                    raise DataError(
                        f"{where}: seed must be an integer, got {seed_text!r}"
                    ) from None
                flag = row[idx["success"]].strip().lower()
                if flag in _TRUE:
                    success = True
                elif flag in _FALSE:
                    success = False
                else:
                    raise DataError(
                        f"{where}: success must be true/false or 1/0, got {row[idx['success']]!r}"
                    )
                policy = row[idx["policy"]].strip() if "policy" in idx else ""
                out.add(policy, task, split, seed, success, src, line)
        except csv.Error as exc:
            raise DataError(f"{name}:{reader.line_num}: malformed CSV ({exc})") from None


def read_lerobot(path: Path, name: str, out: Collector, info: Any, split: str) -> None:
    """LeRobot ``eval_info.json`` (written by ``lerobot-eval``), both layouts.

    * Single environment (``lerobot/scripts/eval.py``): ``{"per_episode": [{"episode_ix",
      "sum_reward", "max_reward", "success", "seed"}, ...], "aggregated": {...}}``. The
      task is the file's folder name; a missing seed falls back to ``episode_ix``.
    * Multi-task (``lerobot_eval.py``, e.g. LIBERO): ``{"per_task": [{"task_group",
      "task_id", "metrics": {"successes": [...], ...}}, ...], "per_group": ...,
      "overall": ...}``. The task is ``<task_group>/<task_id>``; per-task seeds are not
      stored, but every task starts from the same ``--seed`` and counts up, so the
      episode's index is its seed offset, which pairs episodes across policies.

    The policy is left unnamed (comparisons name it after the file); the split is
    `split`.
    """
    src = out.start_file(name)
    if isinstance(info, dict) and isinstance(info.get("per_episode"), list):
        task = path.parent.name or "task"
        for i, ep in enumerate(info["per_episode"]):
            where = f"{name}: per_episode[{i}]"
            if not isinstance(ep, dict) or "success" not in ep:
                raise DataError(f"{where}: expected an object with a 'success' key")
            success = _lerobot_bool(ep["success"], where)
            seed = ep.get("seed")
            if seed is None:
                seed = ep.get("episode_ix", i)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise DataError(f"{where}: seed must be an integer or null, got {seed!r}")
            out.add("", task, split, seed, success, src, i + 1)
        return
    if isinstance(info, dict) and isinstance(info.get("per_task"), list):
        row = 0
        for t, entry in enumerate(info["per_task"]):
            where = f"{name}: per_task[{t}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
                raise DataError(f"{where}: expected an object with 'metrics'")
            successes = entry["metrics"].get("successes")
            if not isinstance(successes, list):
                raise DataError(f"{where}: metrics.successes must be a list")
            task = f"{entry.get('task_group', 'task')}/{entry.get('task_id', t)}"
            for i, flag in enumerate(successes):
                row += 1
                success = _lerobot_bool(flag, f"{where}.metrics.successes[{i}]")
                out.add("", task, split, i, success, src, row)
        return
    raise DataError(
        f"{name}: not a LeRobot eval_info.json (no 'per_episode' or 'per_task' list) "
        "and not a vla-eval episode file"
    )


def _lerobot_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: success must be true/false, got {value!r}")
