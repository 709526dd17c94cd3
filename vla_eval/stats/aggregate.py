"""Success rates over several tasks: the pooled rate and the mean of per-task rates.

A split (say *unseen*) usually holds several tasks with different numbers of trials.
Two summaries answer different questions. The **pooled** rate (all successes over all
trials) is the chance that a random episode of the evaluation succeeds; its Wilson
interval treats the episodes as one binomial sample. The **macro mean** (the mean of
per-task rates) weighs every task equally, so a task run 200 times cannot drown one
run 20 times; its interval comes from a stratified bootstrap that resamples episodes
within each task, keeping each task's trial count fixed (Efron & Tibshirani 1993,
sec. 6.4). Randomness comes only from an explicit `np.random.Generator` or seed, which
the result records. numpy and the standard library only; never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.stats.intervals import Interval, binomial_interval, check_confidence

DEFAULT_BOOTSTRAP = 10_000


def pooled_rate(successes: Any, trials: Any, confidence: float = 0.95) -> Interval:
    """All successes over all trials, with a Wilson interval.

    Args:
        successes: (tasks,) successes per task.
        trials: (tasks,) trials per task.
        confidence: confidence level in (0, 1).

    Example:
        >>> ci = pooled_rate([17, 3], [20, 20])
        >>> ci.successes, ci.trials, ci.estimate
        (20, 40, 0.5)
    """
    k, n = _counts(successes, trials)
    return binomial_interval(int(k.sum()), int(n.sum()), confidence)


@dataclass(frozen=True)
class MacroMean:
    """Mean of per-task success rates with a stratified bootstrap interval.

    Attributes:
        estimate: mean over tasks of successes / trials.
        lower, upper: percentile bootstrap bounds.
        confidence: the level of the interval.
        tasks: number of tasks averaged.
        n_bootstrap: bootstrap resamples drawn.
        seed: the seed the generator was built from, if one was given as an int.
        method: always ``"stratified-bootstrap-percentile"``.
    """

    estimate: float
    lower: float
    upper: float
    confidence: float
    tasks: int
    n_bootstrap: int
    seed: int | None
    method: str = "stratified-bootstrap-percentile"

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return {
            "estimate": self.estimate,
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
            "method": self.method,
            "tasks": self.tasks,
            "n_bootstrap": self.n_bootstrap,
            "seed": self.seed,
        }


def macro_mean(
    successes: Any,
    trials: Any,
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
) -> MacroMean:
    """Mean of per-task success rates, with a stratified bootstrap interval.

    Each bootstrap replicate redraws every task's episodes with replacement, keeping
    the task's trial count: for a success/failure outcome that is exactly one draw of
    Binomial(n_t, k_t / n_t) per task, which is how it is computed (vectorised,
    (n_bootstrap, tasks) at once). The interval is the percentile interval of the
    replicate means. A task with 0% or 100% success contributes no bootstrap
    variation -- with few trials, read such a task's own Wilson interval.

    Args:
        successes: (tasks,) successes per task.
        trials: (tasks,) trials per task, each >= 1.
        confidence: confidence level in (0, 1).
        rng: a `np.random.Generator`, or an int seed to build one from.
        n_bootstrap: number of bootstrap replicates (>= 100).

    Example:
        >>> m = macro_mean([18, 2], [20, 20], rng=0)
        >>> m.estimate, m.tasks
        (0.5, 2)
        >>> 0.3 < m.lower < 0.5 < m.upper < 0.7
        True
    """
    confidence = check_confidence(confidence)
    k, n = _counts(successes, trials)
    if n_bootstrap < 100:
        raise UsageError(f"n_bootstrap must be at least 100, got {n_bootstrap}")
    seed = None
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        seed = int(rng)
        rng = np.random.default_rng(seed)
    elif not isinstance(rng, np.random.Generator):
        raise UsageError(f"rng must be a numpy Generator or an int seed, got {rng!r}")
    rates = k / n
    draws = rng.binomial(n, rates, size=(n_bootstrap, rates.size))
    means = (draws / n).mean(axis=1)
    alpha = 1 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return MacroMean(
        estimate=float(rates.mean()),
        lower=float(lo),
        upper=float(hi),
        confidence=confidence,
        tasks=int(rates.size),
        n_bootstrap=int(n_bootstrap),
        seed=seed,
    )


def _counts(successes: Any, trials: Any) -> tuple[np.ndarray, np.ndarray]:
    k = np.atleast_1d(np.asarray(successes))
    n = np.atleast_1d(np.asarray(trials))
    if k.shape != n.shape or k.ndim != 1:
        raise UsageError(f"successes {k.shape} and trials {n.shape} must be equal-length lists")
    if k.size == 0:
        raise UsageError("no tasks: a success rate over no episodes is undefined")
    if not (np.issubdtype(k.dtype, np.integer) and np.issubdtype(n.dtype, np.integer)):
        raise UsageError("successes and trials must be whole numbers")
    if np.any(n < 1):
        raise UsageError("every task needs at least one trial")
    if np.any((k < 0) | (k > n)):
        raise UsageError("successes must lie between 0 and trials for every task")
    return k.astype(np.int64), n.astype(np.int64)
