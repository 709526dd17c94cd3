"""The success report of one policy: per group, per split (pooled and macro), and the gap.

`build_report` turns one policy's episode counts into what a user needs after
rollouts: successes, trials, rate and Wilson interval per (task, split); per split the
pooled rate and the mean of per-task rates; per task group (a suite such as
``libero_spatial``) and split the same two rates; and the seen -> unseen
generalisation gap with Newcombe's interval. It reads only per-(task, split) counts
(`vla_eval.episodes.EpisodeCounts`), so its memory does not grow with the episodes. The result is a
strict-JSON-ready dict (schema ``vla-eval/report/2``). Depends on
`vla_eval.episodes` and `vla_eval.stats` only; never imports torch, and never imports
scipy, so ``vla-eval report`` starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vla_eval.episodes import Cell, EpisodeCounts, EpisodeTable
from vla_eval.errors import UsageError
from vla_eval.stats.aggregate import DEFAULT_BOOTSTRAP, macro_mean, macro_mean_interval
from vla_eval.stats.intervals import binomial_interval, check_confidence

REPORT_SCHEMA = "vla-eval/report/2"
BY_FIELDS = ("task", "split", "group")
WIDE_CI = 0.4  # warn when an interval is wider than this: too few trials to conclude


def parse_by(text: str) -> tuple[str, ...]:
    """Parse ``--by task,split`` into a tuple of grouping fields."""
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fields if f not in BY_FIELDS]
    if not fields or bad or len(set(fields)) != len(fields):
        raise UsageError(
            f"--by takes a comma-separated subset of {', '.join(BY_FIELDS)}, got {text!r}"
        )
    return fields


def _as_counts(episodes: EpisodeCounts | EpisodeTable) -> EpisodeCounts:
    return episodes if isinstance(episodes, EpisodeCounts) else EpisodeCounts.from_table(episodes)


def _value(counts: EpisodeCounts, cell: Cell, field: str) -> str:
    return counts.task_groups.get(cell.task, "") if field == "group" else getattr(cell, field)


def _count_groups(
    counts: EpisodeCounts, fields: Sequence[str], cells: Sequence[Cell] | None = None
) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """Group `cells` (default: all) by `fields`: keys, successes and trials.

    Keys are ordered field by field, each by first appearance in the files, so rows come
    out in a stable order however episodes were interleaved (rollouts finish out of order).
    """
    rank = {f: {v: i for i, v in enumerate(counts.order(f))} for f in fields}
    totals: dict[tuple[str, ...], list[int]] = {}
    for cell in counts.cells if cells is None else cells:
        total = totals.setdefault(tuple(_value(counts, cell, f) for f in fields), [0, 0])
        total[0] += cell.successes
        total[1] += cell.trials
    keys = sorted(totals, key=lambda key: [rank[f][v] for f, v in zip(fields, key, strict=True)])
    k = np.array([totals[key][0] for key in keys], dtype=np.int64)
    n = np.array([totals[key][1] for key in keys], dtype=np.int64)
    return keys, k, n


def interval_dict(k: int, n: int, confidence: float) -> dict[str, Any]:
    """Successes, trials, rate and Wilson interval as the report and comparison write them."""
    ci = binomial_interval(int(k), int(n), confidence)
    return {
        "successes": int(k),
        "trials": int(n),
        "rate": ci.estimate,
        "lower": ci.lower,
        "upper": ci.upper,
    }


def build_report(
    episodes: EpisodeCounts | EpisodeTable,
    by: Sequence[str] = ("task", "split"),
    confidence: float = 0.95,
    seed: int = 0,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    splits: Sequence[str] | None = None,
    gap: tuple[str, str] = ("seen", "unseen"),
    macro: str = "adjusted",
) -> dict[str, Any]:
    """The success report of one policy's episodes.

    Args:
        episodes: the episodes' counts (`vla_eval.episodes.count_episodes`, memory flat
            in the number of episodes) or a table (`vla_eval.episodes.load_episodes`).
        by: fields to group the per-group table by (subset of task, split, group).
        confidence: level of every interval.
        seed: seed of the bootstrap generator (recorded in the result).
        n_bootstrap: bootstrap replicates for the mean of per-task rates.
        splits: splits that must be present (error if one has no episodes); by
            default, whichever splits the episodes have.
        gap: the (from, to) splits of the generalisation gap, reported when both
            are present.
        macro: interval for the mean of per-task rates: ``adjusted`` (the adjusted
            Wald interval, close to nominal coverage) or ``bootstrap`` (the
            stratified percentile bootstrap, which under-covers with few trials).

    Returns:
        A dict ready for `vla_eval.results.write_json`, schema ``vla-eval/report/2``.
        ``task_groups`` holds, per task group (a suite such as ``libero_spatial``, from
        LeRobot's suite output or a ``group`` field) and split, the pooled rate and the
        mean of its tasks' rates; the pooled rate over all groups is the split's.

    Raises:
        UsageError: no episodes, episodes of several policies, or a required split
            without episodes.
    """
    confidence = check_confidence(confidence)
    counts = _as_counts(episodes)
    named = _one_policy(counts)
    present = _splits_present(counts, splits)
    if "group" in by and not counts.task_groups:
        raise UsageError(
            f"{', '.join(counts.files)}: --by group, but no episode names a task group "
            "(LeRobot's suite output and files with a 'group' field do)"
        )
    groups, warnings = _group_rows(counts, by, confidence)
    rng = np.random.default_rng(seed)
    split_rows, gap_row = _splits_and_gap(
        counts, present, gap, confidence, rng, n_bootstrap, macro, warnings
    )
    suites = _task_group_rows(counts, present, confidence, rng, n_bootstrap, macro)
    return {
        "schema": REPORT_SCHEMA,
        "policy": named[0] if named else None,
        "inputs": {
            "files": list(counts.files),
            "episodes": counts.episodes,
            "by": list(by),
            "confidence": confidence,
            "n_bootstrap": n_bootstrap,
            "macro": macro,
        },
        "seeds": {"bootstrap": seed},
        "groups": groups,
        "splits": split_rows,
        "task_groups": suites,
        "gap": gap_row,
        "warnings": list(counts.notes) + warnings,
    }


def _splits_and_gap(
    counts: EpisodeCounts,
    present: Sequence[str],
    gap: tuple[str, str],
    confidence: float,
    rng: np.random.Generator,
    n_bootstrap: int,
    macro: str,
    warnings: list[str],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Each split's pooled and macro rates, and the gap (None unless both splits are there)."""
    task_keys, task_k, task_n = _count_groups(counts, ("split", "task"))
    split_rows = []
    pooled: dict[str, tuple[int, int]] = {}
    for s in present:
        idx = [i for i, key in enumerate(task_keys) if key[0] == s]
        pooled[s] = (int(task_k[idx].sum()), int(task_n[idx].sum()))
        split_rows.append(
            _split_row(s, task_k[idx], task_n[idx], confidence, rng, n_bootstrap, macro)
        )
    if not (gap[0] in pooled and gap[1] in pooled):
        return split_rows, None
    tasks_from = {key[1] for key in task_keys if key[0] == gap[0]}
    tasks_to = {key[1] for key in task_keys if key[0] == gap[1]}
    if tasks_from != tasks_to:
        only = sorted(tasks_from ^ tasks_to)
        warnings.append(
            f"the {gap[0]} and {gap[1]} splits cover different tasks ({', '.join(only[:5])} "
            "in only one); the pooled gap mixes task difficulty with generalisation"
        )
    return split_rows, _gap_row(gap, pooled, confidence)


def _task_group_rows(
    counts: EpisodeCounts,
    splits: Sequence[str],
    confidence: float,
    rng: np.random.Generator,
    n_bootstrap: int,
    macro: str,
) -> list[dict[str, Any]]:
    """Per (task group, split): the pooled rate and the mean of the group's task rates."""
    if not counts.task_groups:
        return []
    keys, k, n = _count_groups(counts, ("group", "split", "task"))
    rows = []
    for group in counts.order("group"):
        for s in splits:
            idx = [i for i, key in enumerate(keys) if key[0] == group and key[1] == s]
            if idx:
                row = _split_row(s, k[idx], n[idx], confidence, rng, n_bootstrap, macro)
                rows.append({"group": group or None, **row})
    return rows


def _one_policy(counts: EpisodeCounts) -> list[str]:
    """The policy names in `counts` (at most one; unnamed episodes do not count)."""
    if counts.episodes == 0:
        raise UsageError(f"{', '.join(counts.files)}: no episodes to report")
    named = [p for p in counts.policies() if p]
    if len(named) > 1:
        raise UsageError(
            f"the episodes come from {len(named)} policies ({', '.join(named[:5])}); "
            "report one policy at a time, or compare them with `vla-eval compare`"
        )
    return named


def _splits_present(counts: EpisodeCounts, splits: Sequence[str] | None) -> list[str]:
    """The splits to report: `splits` if given (each must have episodes), else all."""
    present = counts.order("split")
    if splits:
        missing = [s for s in splits if s not in present]
        if missing:
            raise UsageError(
                f"{', '.join(counts.files)}: split {missing[0]!r} has no episodes "
                f"(present: {', '.join(present)})"
            )
        present = list(splits)
    return present


def _group_rows(
    counts: EpisodeCounts, by: Sequence[str], confidence: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per group of `by`, and a warning for each group with too few trials."""
    keys, k, n = _count_groups(counts, by)
    groups = []
    warnings = []
    for key, ki, ni in zip(keys, k, n, strict=True):
        row = dict(zip(by, key, strict=True))
        row.update(interval_dict(ki, ni, confidence))
        groups.append(row)
        width = row["upper"] - row["lower"]
        if width > WIDE_CI:
            label = ", ".join(f"{f} {v}" for f, v in zip(by, key, strict=True))
            warnings.append(
                f"{label}: only {ni} trials, the {100 * confidence:g}% interval is "
                f"{100 * width:.0f} points wide -- too few trials to conclude much; "
                f"see `vla-eval plan --half-width`"
            )
    return groups, warnings


def _split_row(
    split: str,
    ks: np.ndarray,
    ns: np.ndarray,
    confidence: float,
    rng: np.random.Generator,
    n_bootstrap: int,
    macro_method: str = "adjusted",
) -> dict[str, Any]:
    """One split: pooled rate (Wilson) and mean of its per-task rates.

    `ks`, `ns`: (tasks,) successes and trials of each task in the split.
    """
    if macro_method == "bootstrap":
        macro = macro_mean(ks, ns, confidence, rng=rng, n_bootstrap=n_bootstrap)
    elif macro_method == "adjusted":
        macro = macro_mean_interval(ks, ns, confidence)
    else:
        raise UsageError(f"unknown macro interval {macro_method!r}; use adjusted or bootstrap")
    return {
        "split": split,
        "tasks": len(ks),
        "pooled": interval_dict(int(ks.sum()), int(ns.sum()), confidence),
        "macro": {
            "rate": macro.estimate,
            "lower": macro.lower,
            "upper": macro.upper,
            "method": macro.method,
            "n_bootstrap": macro.n_bootstrap,
        },
    }


def _gap_row(
    gap: tuple[str, str], pooled: dict[str, tuple[int, int]], confidence: float
) -> dict[str, Any]:
    """The pooled generalisation gap ``from - to`` with Newcombe's interval."""
    from vla_eval.stats.compare import newcombe_difference

    d = newcombe_difference(*pooled[gap[0]], *pooled[gap[1]], confidence)
    return {
        "from": gap[0],
        "to": gap[1],
        "estimate": d.estimate,
        "lower": d.lower,
        "upper": d.upper,
        "method": d.method,
        "significant": not d.contains(0.0),
    }
