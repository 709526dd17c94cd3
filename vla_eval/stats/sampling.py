"""Temperature sampling over imbalanced tasks: the one temperature function and its table.

``p_i ∝ n_i^(1/T)``: T = 1 is the data ratio, T = inf uniform over the tasks that
have data (its own code path rather than ``1/inf`` arithmetic), T > 1 flattens the
mix toward rare tasks. `temperature_probs` is the one implementation used by the
trainer's sampler, the Diagnose task-imbalance detector and `vla-eval sampling`
(`mixing_table`), together with the parsers and validators of temperatures and task
counts and the recipe's ``1/n_i`` loss weights. numpy and the standard library only;
never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vla_eval.errors import UsageError

INF = math.inf


def parse_temperature(value: str | float) -> float:
    """Parse a sampling temperature: a positive number or ``inf``.

    >>> parse_temperature("2"), parse_temperature("inf")
    (2.0, inf)
    """
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"temperature must be a positive number or 'inf', got {value!r}") from None
    return check_temperature(t)


def check_temperature(temperature: float) -> float:
    """Return `temperature` as a float if it is > 0 (inf allowed), else raise UsageError."""
    t = float(temperature)
    if math.isnan(t) or t <= 0:
        raise UsageError(f"temperature must be > 0 (or inf), got {temperature!r}")
    return t


def parse_counts(text: str) -> dict[str, int]:
    """Parse ``"pick=50000,place=30000"`` into an ordered {task: count} dict.

    >>> parse_counts("pick=50000, place=30000")
    {'pick': 50000, 'place': 30000}
    """
    counts: dict[str, int] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UsageError(f"counts must look like task=count[,task=count...], got {item!r}")
        try:
            n = int(value)
        except ValueError:
            raise UsageError(f"count for task {name!r} is not an integer: {value!r}") from None
        if name in counts:
            raise UsageError(f"task {name!r} appears twice in the counts")
        counts[name] = n
    if not counts:
        raise UsageError("no task counts given (expected task=count[,task=count...])")
    return check_counts(counts)


def check_counts(counts: Mapping[str, int] | Sequence[int] | np.ndarray) -> Any:
    """Validate task counts: non-negative integers, at least one positive. Returns them."""
    values = (
        list(counts.values()) if isinstance(counts, Mapping) else list(np.asarray(counts).ravel())
    )
    names = list(counts) if isinstance(counts, Mapping) else list(range(len(values)))
    if not values:
        raise UsageError("no task counts given")
    for name, v in zip(names, values, strict=True):
        if isinstance(v, (bool, np.bool_)) or float(v) != int(v):
            raise UsageError(f"count for task {name!r} must be an integer, got {v!r}")
        if v < 0:
            raise UsageError(f"count for task {name!r} is negative ({v})")
    if sum(int(v) for v in values) == 0:
        raise UsageError("every task count is zero: there is nothing to sample")
    return counts


def temperature_probs(counts: Sequence[int] | np.ndarray, temperature: float) -> np.ndarray:
    """Probability of drawing each task, ``p_i ∝ n_i^(1/T)``, from integer task counts.

    T = 1 reproduces the data ratio, T > 1 flattens it toward rare tasks, T = inf is
    uniform over the tasks that have data, T < 1 sharpens toward common tasks. A task
    with no examples always gets 0. Computed in log space, so T = 0.5 with large
    counts does not overflow.

    Args:
        counts: (K,) examples per task.
        temperature: T > 0, or ``math.inf``.

    Returns:
        (K,) probabilities summing to 1.

    >>> temperature_probs([50000, 30000, 2000, 500], 2).round(4).tolist()
    [0.482, 0.3734, 0.0964, 0.0482]
    """
    return temperature_weights(np.asarray(check_counts(counts), dtype=np.float64), temperature)


def temperature_weights(weights: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """``p_i ∝ w_i^(1/T)`` for any non-negative weights (counts, or observed shares).

    The one temperature function: `temperature_probs` validates integer counts and
    calls it; Diagnose calls it with the sampling shares it observed.

    Args:
        weights: (K,) non-negative finite weights, at least one positive.
        temperature: T > 0, or ``math.inf`` (uniform over the positive weights).

    Returns:
        (K,) probabilities summing to 1; a zero weight gets 0.

    >>> temperature_weights([0.5, 0.3, 0.02, 0.005], 2).round(4).tolist()
    [0.482, 0.3734, 0.0964, 0.0482]
    """
    n = np.asarray(weights, dtype=np.float64).ravel()
    if n.size == 0 or not np.all(np.isfinite(n)) or np.any(n < 0) or not np.any(n > 0):
        raise UsageError("sampling weights must be finite, non-negative and not all zero")
    t = check_temperature(temperature)
    present = n > 0
    if math.isinf(t):
        return present / present.sum()
    logits = np.where(present, np.log(np.where(present, n, 1.0)) / t, -np.inf)
    logits -= logits[present].max()
    p = np.exp(logits)
    return p / p.sum()


def task_loss_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-task loss weights ``∝ 1/n_i``, normalised to sum to 1 over tasks with data.

    >>> task_loss_weights([1, 3]).tolist()
    [0.75, 0.25]
    """
    n = np.asarray(check_counts(counts), dtype=np.float64)
    inv = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
    return inv / inv.sum()


def mixing_table(counts: Mapping[str, int], temperatures: Sequence[float]) -> dict[str, Any]:
    """Everything `vla-eval sampling` prints, as plain data.

    Args:
        counts: {task: examples}.
        temperatures: temperatures to tabulate (``math.inf`` allowed).

    Returns:
        dict with ``tasks``, ``counts``, ``data_share``, ``loss_weights`` and one entry
        per temperature with its ``probabilities`` and per-example ``sample_weights``
        (relative to an example of the largest task).
    """
    check_counts(counts)
    names = list(counts)
    n = np.array([counts[k] for k in names], dtype=np.float64)
    rows = []
    for t in temperatures:
        t = check_temperature(t)
        p = temperature_probs(n, t)
        with np.errstate(divide="ignore"):
            rel = np.where(n > 0, p / np.where(n > 0, n, 1.0), 0.0)
        rel = rel / rel[np.argmax(n)]
        rows.append(
            {
                "temperature": "inf" if math.isinf(t) else t,
                "probabilities": dict(zip(names, p.tolist(), strict=True)),
                "sample_weights": dict(zip(names, rel.tolist(), strict=True)),
            }
        )
    return {
        "tasks": names,
        "counts": {k: int(counts[k]) for k in names},
        "data_share": dict(zip(names, (n / n.sum()).tolist(), strict=True)),
        "loss_weights": dict(zip(names, task_loss_weights(n).tolist(), strict=True)),
        "temperatures": rows,
    }


def format_mixing_table(table: Mapping[str, Any]) -> str:
    """Human-readable rendering of `mixing_table` output: one row per task."""
    names = table["tasks"]
    temps = table["temperatures"]
    width = max(6, *(len(n) for n in names))
    head = f"{'task':<{width}} {'count':>9} {'share':>7}"
    head += "".join(f" {'p(T=' + _fmt_t(r['temperature']) + ')':>10}" for r in temps)
    head += f" {'loss w':>7}"
    lines = [head]
    for name in names:
        line = f"{name:<{width}} {table['counts'][name]:>9d} {table['data_share'][name]:>7.4f}"
        line += "".join(f" {r['probabilities'][name]:>10.4f}" for r in temps)
        line += f" {table['loss_weights'][name]:>7.4f}"
        lines.append(line)
    return "\n".join(lines)


def _fmt_t(t: float | str) -> str:
    return "inf" if t == "inf" else f"{float(t):g}"
