"""The success report of one policy: per group, per split (pooled and macro), and the gap.

`build_report` turns one policy's episodes into what a user needs after rollouts:
successes, trials, rate and Wilson interval per (task, split); per split the pooled
rate and the mean of per-task rates with a stratified bootstrap interval; and the
seen -> unseen generalisation gap with Newcombe's interval. The result is a
strict-JSON-ready dict (schema ``vla-eval/report/2``). Depends on
`vla_eval.episodes` and `vla_eval.stats` only; never imports torch, and never imports
scipy, so ``vla-eval report`` starts fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vla_eval.episodes import EpisodeTable
from vla_eval.errors import UsageError
from vla_eval.stats.aggregate import DEFAULT_BOOTSTRAP, macro_mean, macro_mean_interval
from vla_eval.stats.intervals import binomial_interval, check_confidence

REPORT_SCHEMA = "vla-eval/report/2"
BY_FIELDS = ("task", "split")
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


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values in order of first appearance, and each entry's index into them."""
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inverse]


def _count_groups(
    table: EpisodeTable, fields: Sequence[str]
) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """Group episodes by `fields`: keys (ordered field by field, each by first appearance), successes and trials."""
    combined = np.zeros(len(table), dtype=np.int64)
    names = []
    for f in fields:
        uniq, code = table.categorical(f)  # == _codes(getattr(table, f)), without strings
        combined = combined * len(uniq) + code
        names.append(uniq)
    # np.unique sorts the combined codes, i.e. by the first field's first-seen order,
    # then the second's: rows come out in a stable order however episodes were
    # interleaved in the file (rollouts finish out of order).
    groups, inverse = np.unique(combined, return_inverse=True)
    trials = np.bincount(inverse, minlength=groups.size)
    successes = np.bincount(inverse, weights=table.success, minlength=groups.size)
    keys = []
    for g in groups:
        key = []
        for uniq in reversed(names):
            g, c = divmod(int(g), len(uniq))
            key.append(str(uniq[c]))
        keys.append(tuple(reversed(key)))
    return keys, successes.astype(np.int64), trials.astype(np.int64)


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
    table: EpisodeTable,
    by: Sequence[str] = BY_FIELDS,
    confidence: float = 0.95,
    seed: int = 0,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    splits: Sequence[str] | None = None,
    gap: tuple[str, str] = ("seen", "unseen"),
    macro: str = "adjusted",
) -> dict[str, Any]:
    """The success report of one policy's episodes.

    Args:
        table: the episodes (see `vla_eval.episodes.load_episodes`).
        by: fields to group the per-group table by (subset of task, split).
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

    Raises:
        UsageError: no episodes, episodes of several policies, or a required split
            without episodes.
    """
    confidence = check_confidence(confidence)
    named = _one_policy(table)
    present = _splits_present(table, splits)
    groups, warnings = _group_rows(table, by, confidence)
    rng = np.random.default_rng(seed)
    task_keys, task_k, task_n = _count_groups(table, ("split", "task"))
    split_rows = []
    pooled: dict[str, tuple[int, int]] = {}
    for s in present:
        idx = [i for i, key in enumerate(task_keys) if key[0] == s]
        pooled[s] = (int(task_k[idx].sum()), int(task_n[idx].sum()))
        split_rows.append(
            _split_row(s, task_k[idx], task_n[idx], confidence, rng, n_bootstrap, macro)
        )
    gap_row = None
    if gap[0] in pooled and gap[1] in pooled:
        gap_row = _gap_row(gap, pooled, confidence)
        tasks_from = {key[1] for key in task_keys if key[0] == gap[0]}
        tasks_to = {key[1] for key in task_keys if key[0] == gap[1]}
        if tasks_from != tasks_to:
            only = sorted(tasks_from ^ tasks_to)
            warnings.append(
                f"the {gap[0]} and {gap[1]} splits cover different tasks ({', '.join(only[:5])} "
                "in only one); the pooled gap mixes task difficulty with generalisation"
            )
    return {
        "schema": REPORT_SCHEMA,
        "policy": named[0] if named else None,
        "inputs": {
            "files": list(table.files),
            "episodes": len(table),
            "by": list(by),
            "confidence": confidence,
            "n_bootstrap": n_bootstrap,
            "macro": macro,
        },
        "seeds": {"bootstrap": seed},
        "groups": groups,
        "splits": split_rows,
        "gap": gap_row,
        "warnings": warnings,
    }


def _one_policy(table: EpisodeTable) -> list[str]:
    """The policy names in `table` (at most one; unnamed episodes do not count)."""
    if len(table) == 0:
        raise UsageError(f"{', '.join(table.files)}: no episodes to report")
    named = [p for p in table.policies() if p]
    if len(named) > 1:
        raise UsageError(
            f"the episodes come from {len(named)} policies ({', '.join(named[:5])}); "
            "report one policy at a time, or compare them with `vla-eval compare`"
        )
    return named


def _splits_present(table: EpisodeTable, splits: Sequence[str] | None) -> list[str]:
    """The splits to report: `splits` if given (each must have episodes), else all."""
    split_names, _ = table.categorical("split")
    present = [str(s) for s in split_names]
    if splits:
        missing = [s for s in splits if s not in present]
        if missing:
            raise UsageError(
                f"{', '.join(table.files)}: split {missing[0]!r} has no episodes "
                f"(present: {', '.join(present)})"
            )
        present = list(splits)
    return present


def _group_rows(
    table: EpisodeTable, by: Sequence[str], confidence: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per group of `by`, and a warning for each group with too few trials."""
    keys, k, n = _count_groups(table, by)
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
