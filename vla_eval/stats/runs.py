"""Several training runs (seeds) per variant: runs x tasks success rates and their spread.

One training seed per variant treats every difference as episode noise; a second seed
often moves the success rate more than the episodes do. With success counts of shape
(runs, tasks) this module gives the mean success rate with a **two-level bootstrap**
(resample training runs, then each chosen run's episodes within each task), the
**interquartile mean** (IQM: the mean of the middle 50% of the runs x tasks rates,
robust to one diverged run), the **probability of improvement** P(X > Y) of one
variant's runs over another's, averaged over tasks, and how much of the spread
between runs is seeds and how much episodes. In the spirit of rliable (Agarwal et al.
2021, "Deep reinforcement learning at the edge of the statistical precipice",
NeurIPS), written from the definitions, with an explicit `np.random.Generator`.
numpy and scipy only; never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.stats.intervals import check_confidence

Statistic = Callable[[np.ndarray], np.ndarray]  # (reps, runs, tasks) rates -> (reps,)


def check_runs(successes: Any, trials: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated (runs, tasks) int arrays: whole numbers, trials >= 1, 0 <= k <= n."""
    k, n = np.asarray(successes), np.asarray(trials)
    if k.ndim != 2 or k.shape != n.shape or k.size == 0:
        raise UsageError(f"successes {k.shape} and trials {n.shape} must be equal (runs, tasks)")
    if not (np.issubdtype(k.dtype, np.integer) and np.issubdtype(n.dtype, np.integer)):
        raise UsageError("successes and trials must be whole numbers")
    if np.any(n < 1) or np.any((k < 0) | (k > n)):
        raise UsageError("every (run, task) needs trials >= 1 and 0 <= successes <= trials")
    return k.astype(np.int64), n.astype(np.int64)


def mean_rate(rates: np.ndarray) -> np.ndarray:
    """Mean over runs and tasks of (..., runs, tasks) rates."""
    return rates.mean(axis=(-2, -1))


def iqm(rates: np.ndarray) -> np.ndarray:
    """Interquartile mean over runs and tasks of (..., runs, tasks) rates: the mean of
    the values between the 25th and 75th percentiles (scipy's ``trim_mean(x, 0.25)``
    of the flattened scores).

    Example:
        >>> float(iqm(np.array([[0.0, 0.5], [0.6, 1.0]])))
        0.55
    """
    from scipy.stats import trim_mean

    flat = rates.reshape(*rates.shape[:-2], -1)
    return np.asarray(trim_mean(flat, 0.25, axis=-1))


def resample_runs(
    successes: Any, trials: Any, rng: np.random.Generator, n_bootstrap: int
) -> np.ndarray:
    """(n_bootstrap, runs, tasks) rates from the two-level bootstrap.

    Level 1 draws `runs` training runs with replacement; level 2 redraws each chosen
    run's episodes of each task with replacement (a Binomial(n, k / n) draw, the same
    as resampling its success/failure outcomes).
    """
    k, n = check_runs(successes, trials)
    runs = k.shape[0]
    pick = rng.integers(0, runs, size=(n_bootstrap, runs))
    kk, nn = k[pick], n[pick]
    return rng.binomial(nn, kk / nn) / nn


@dataclass(frozen=True)
class RunsInterval:
    """A statistic of runs x tasks rates with a two-level bootstrap interval.

    Attributes:
        statistic: ``mean``, ``iqm`` or ``probability_of_improvement``.
        estimate, lower, upper: the value and its percentile interval.
        confidence: level of the interval.
        runs: training runs (of each variant, for a comparison).
        n_bootstrap: replicates; seed: the generator's seed, if given as an int.
    """

    statistic: str
    estimate: float
    lower: float
    upper: float
    confidence: float
    runs: int | tuple[int, int]
    n_bootstrap: int
    seed: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return {**self.__dict__, "runs": list(np.atleast_1d(self.runs).tolist())}


def _generator(rng: np.random.Generator | int) -> tuple[np.random.Generator, int | None]:
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng)), int(rng)
    if isinstance(rng, np.random.Generator):
        return rng, None
    raise UsageError(f"rng must be a numpy Generator or an int seed, got {rng!r}")


def runs_interval(
    successes: Any,
    trials: Any,
    statistic: str = "mean",
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
    n_bootstrap: int = 5000,
) -> RunsInterval:
    """Mean or IQM of (runs, tasks) success rates with a two-level bootstrap interval.

    Example:
        >>> r = runs_interval([[18, 15], [12, 9], [17, 16]], [[20, 20]] * 3, rng=0)
        >>> round(r.estimate, 3), r.lower < r.estimate < r.upper
        (0.725, True)
    """
    confidence = check_confidence(confidence)
    k, n = check_runs(successes, trials)
    fn = {"mean": mean_rate, "iqm": iqm}.get(statistic)
    if fn is None:
        raise UsageError(f"unknown statistic {statistic!r}; choose mean or iqm")
    gen, seed = _generator(rng)
    reps = fn(resample_runs(k, n, gen, n_bootstrap))
    alpha = 1 - confidence
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    est = float(fn(k / n))
    return RunsInterval(
        statistic, est, float(lo), float(hi), confidence, k.shape[0], n_bootstrap, seed
    )


def probability_of_improvement(x_rates: np.ndarray, y_rates: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 between a run of X and a run of Y, averaged over tasks.

    Args:
        x_rates: (..., runs_x, tasks) rates of variant X.
        y_rates: (..., runs_y, tasks) rates of variant Y, the same tasks.

    Example:
        >>> float(probability_of_improvement(np.array([[0.9], [0.7]]), np.array([[0.7], [0.5]])))
        0.875
    """
    gt = (x_rates[..., :, None, :] > y_rates[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x_rates[..., :, None, :] == y_rates[..., None, :, :]).mean(axis=(-3, -2))
    return (gt + 0.5 * eq).mean(axis=-1)


def improvement_interval(
    x: tuple[Any, Any],
    y: tuple[Any, Any],
    confidence: float = 0.95,
    rng: np.random.Generator | int = 0,
    n_bootstrap: int = 2000,
) -> RunsInterval:
    """Probability of improvement of X over Y, each resampled by the two-level bootstrap.

    Args:
        x, y: (successes, trials) of each variant, each (runs, tasks), the same tasks.
    """
    confidence = check_confidence(confidence)
    kx, nx = check_runs(*x)
    ky, ny = check_runs(*y)
    if kx.shape[1] != ky.shape[1]:
        raise UsageError(f"the variants have {kx.shape[1]} and {ky.shape[1]} tasks")
    gen, seed = _generator(rng)
    reps = probability_of_improvement(
        resample_runs(kx, nx, gen, n_bootstrap), resample_runs(ky, ny, gen, n_bootstrap)
    )
    alpha = 1 - confidence
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    est = float(probability_of_improvement(kx / nx, ky / ny))
    return RunsInterval(
        "probability_of_improvement",
        est,
        float(lo),
        float(hi),
        confidence,
        (kx.shape[0], ky.shape[0]),
        n_bootstrap,
        seed,
    )


def spread(successes: Any, trials: Any) -> dict[str, float]:
    """How much of the spread of run rates is training seeds and how much episodes.

    Per task, the variance of the rates across runs (ddof 1) is compared with what
    episodes alone would give, the mean over runs of p(1 - p) / (n - 1) (unbiased for
    the binomial variance of a rate); the seed component is the excess, floored at 0.
    Averaged over tasks.

    Returns:
        ``between_runs`` (observed variance), ``episodes`` and ``seeds`` (its two
        parts) and ``seed_share`` (seeds / (seeds + episodes), None-free: 0 when both
        are 0).
    """
    k, n = check_runs(successes, trials)
    if k.shape[0] < 2:
        raise UsageError("the spread between runs needs at least two runs")
    rates = k / n
    observed = rates.var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_run = np.where(n > 1, rates * (1 - rates) / np.maximum(n - 1, 1), 0.0)
    episodes = per_run.mean(axis=0)
    seeds = np.maximum(observed - episodes, 0.0)
    total = float(seeds.mean() + episodes.mean())
    return {
        "between_runs": float(observed.mean()),
        "episodes": float(episodes.mean()),
        "seeds": float(seeds.mean()),
        "seed_share": float(seeds.mean() / total) if total > 0 else 0.0,
    }
