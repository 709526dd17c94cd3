"""Exact tests of equal success rates: Fisher, Boschloo (unconditional) and McNemar (paired).

For k_a of n_a against k_b of n_b: Fisher's exact test (Fisher 1935); Boschloo's
exact unconditional test (Boschloo 1970, Statistica Neerlandica 24:1-9), which is
uniformly more powerful than Fisher's; and, when both policies ran the same (task,
split, seed) episodes, McNemar's exact test on the discordant pairs (McNemar 1947).
numpy and the standard library at import time; scipy only inside the tests. Never
imports torch.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from vla_eval.errors import UsageError

Alternative = Literal["two-sided", "greater", "less"]

# Above this many tables (n_a + 1) * (n_b + 1), Boschloo's test is not computed: its
# cost grows with n_a * n_b, and at such sizes Fisher's test is practically as powerful.
BOSCHLOO_MAX_TABLES = 4_000_000


def fisher_p(
    k_a: int, n_a: int, k_b: int, n_b: int, alternative: Alternative = "two-sided"
) -> float:
    """Fisher's exact test of equal success rates (scipy.stats.fisher_exact).

    Example:
        >>> round(fisher_p(17, 20, 10, 20), 6)
        0.040742
    """
    from scipy.stats import fisher_exact

    k_a, n_a, k_b, n_b = check_pair(k_a, n_a, k_b, n_b)
    table = [[k_a, n_a - k_a], [k_b, n_b - k_b]]
    return float(fisher_exact(table, alternative=alternative).pvalue)


def boschloo_p(
    k_a: int, n_a: int, k_b: int, n_b: int, alternative: Alternative = "two-sided"
) -> float | None:
    """Boschloo's exact unconditional test of equal success rates.

    The test statistic is Fisher's p-value; the p-value is the largest probability,
    over the unknown common success rate pi, of a table at least as extreme as the
    observed one. Tables are ordered by Fisher's *two-sided* p-value, as in Boschloo
    (1970) and R's ``Exact`` package. For 17/20 vs 10/20 both this and
    ``scipy.stats.boschloo_exact`` on the table with one column per policy
    (``[[17, 10], [3, 10]]``) give 0.019617; scipy on the transposed table tests
    the rows instead and gives 0.020297. scipy's two-sided p-value doubles the
    smaller one-sided one, which differs from this ordering when the trial counts
    differ (3/7 vs 0/9: 0.0452 against 0.0441). One-sided alternatives call scipy.

    Returns:
        The p-value, or None when the trial counts are too large for the exact
        computation to be worth it (more than `BOSCHLOO_MAX_TABLES` tables); use
        Fisher's test there.

    Example:
        >>> round(boschloo_p(17, 20, 10, 20), 6)
        0.019617
    """
    k_a, n_a, k_b, n_b = check_pair(k_a, n_a, k_b, n_b)
    if (n_a + 1) * (n_b + 1) > BOSCHLOO_MAX_TABLES:
        return None
    if alternative != "two-sided":
        from scipy.stats import boschloo_exact

        table = [[k_a, k_b], [n_a - k_a, n_b - k_b]]
        return float(boschloo_exact(table, alternative=alternative).pvalue)
    extreme = _fisher_two_sided_all(n_a, n_b)
    observed = extreme[k_a, k_b]
    mask = (extreme <= observed * (1 + 1e-7)).astype(float)
    return min(1.0, _sup_over_nuisance(mask, n_a, n_b))


def _fisher_two_sided_all(n_a: int, n_b: int) -> np.ndarray:
    """(n_a + 1, n_b + 1) Fisher two-sided p-values of every table with these row sums.

    Conditional on the total number of successes s, x_a is hypergeometric; Fisher's
    two-sided p-value sums the probabilities of the tables no more likely than the
    observed one (with scipy's relative tolerance of 1e-7).
    """
    from scipy.special import gammaln

    def log_comb(n: int, k: np.ndarray) -> np.ndarray:
        return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)

    out = np.empty((n_a + 1, n_b + 1))
    total = n_a + n_b
    for s in range(total + 1):
        xa = np.arange(max(0, s - n_b), min(n_a, s) + 1)
        logp = log_comb(n_a, xa) + log_comb(n_b, s - xa) - log_comb(total, np.array(s))
        pmf = np.exp(logp)
        order = np.argsort(pmf, kind="stable")
        cum = np.cumsum(pmf[order])
        idx = np.searchsorted(pmf[order], pmf * (1 + 1e-7), side="right") - 1
        out[xa, s - xa] = np.minimum(cum[idx], 1.0)
    return out


def _sup_over_nuisance(mask: np.ndarray, n_a: int, n_b: int) -> float:
    """max over pi of P(table in `mask` | both rates = pi): grid search, then refine."""
    from scipy.optimize import minimize_scalar
    from scipy.stats import binom

    xa = np.arange(n_a + 1)
    xb = np.arange(n_b + 1)

    def prob(pi: np.ndarray) -> np.ndarray:
        pa = binom.pmf(xa[None, :], n_a, pi[:, None])
        pb = binom.pmf(xb[None, :], n_b, pi[:, None])
        return np.einsum("gi,ij,gj->g", pa, mask, pb)

    grid = np.linspace(1e-6, 1 - 1e-6, 201)
    values = prob(grid)
    i = int(np.argmax(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = minimize_scalar(
        lambda p: -prob(np.array([p]))[0],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(max(values[i], -res.fun))


def mcnemar_p(a_only: int, b_only: int) -> float:
    """McNemar's exact test on discordant pairs (policy A succeeded where B failed,
    `a_only` times, and the reverse `b_only` times).

    Under equal rates each discordant pair is a fair coin, so the two-sided p-value
    is ``min(1, 2 * P(Binomial(a_only + b_only, 1/2) <= min(a_only, b_only)))``; 1
    when there are no discordant pairs.

    Example:
        >>> round(mcnemar_p(9, 2), 6)
        0.06543
    """
    for name, v in (("a_only", a_only), ("b_only", b_only)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise UsageError(f"{name} must be a non-negative whole number, got {v!r}")
    n = int(a_only) + int(b_only)
    if n == 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, 2.0 * binom.cdf(min(a_only, b_only), n, 0.5)))


def check_pair(k_a: Any, n_a: Any, k_b: Any, n_b: Any) -> tuple[int, int, int, int]:
    """Validated (k_a, n_a, k_b, n_b) as ints: whole numbers, n >= 1, 0 <= k <= n."""
    for name, k, n in (("a", k_a, n_a), ("b", k_b, n_b)):
        for label, v in (("successes", k), ("trials", n)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                if not (isinstance(v, float) and math.isfinite(v) and v.is_integer()):
                    raise UsageError(f"{label} of {name} must be a whole number, got {v!r}")
        if n < 1:
            raise UsageError(f"trials of {name} must be at least 1, got {n}")
        if not 0 <= k <= n:
            raise UsageError(f"successes of {name} must lie between 0 and {n}, got {k}")
    return int(k_a), int(n_a), int(k_b), int(n_b)
