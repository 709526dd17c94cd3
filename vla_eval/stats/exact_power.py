"""Exact power and sample sizes for the tests `compare` runs, by enumerating every outcome.

The normal-approximation formulas of `vla_eval.stats.planning` describe no test that
`compare` actually runs. Here the power of a two-sided test at level alpha is the
exact probability of its rejection region: for two independent arms, the sum of
Binomial(n, p0) x Binomial(n, p1) probabilities over the (n + 1)^2 tables the test
rejects (Boschloo, Fisher, or the pooled z-test); for paired episodes, the sum over
the discordant counts McNemar's exact test rejects, from the chance of a discordant
episode. The sample size is the smallest n per arm whose exact power reaches the
target. Exact power is not monotone in n (it saw-tooths as the discrete rejection
region changes), so a larger n can fall back just under the target; the answer is
the first n that reaches it. Also: the trials for a Wilson half-width with a stated
assurance. numpy and scipy only; never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal, get_args

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.stats.exact_tests import _fisher_two_sided_all, _sup_over_nuisance

Test = Literal["boschloo", "fisher", "z", "mcnemar"]
TESTS: tuple[str, ...] = get_args(Test)
MAX_EXACT_TRIALS = 2000  # per arm; beyond this the enumeration is slow and z is exact enough
# Tables one sample-size search may enumerate, per test: Boschloo maximises over the
# nuisance rate for every candidate threshold, so a table costs it far more than Fisher
# or z. These keep a plan to seconds on a laptop core; beyond them the error says what
# to change instead of computing for minutes.
WORK_LIMIT = {"boschloo": 1.5e6, "fisher": 3e7, "z": 3e8}


def check_test(test: str) -> str:
    """The test's name, validated."""
    if test not in TESTS:
        raise UsageError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    return test


def rejection_region(n: int, test: str, alpha: float) -> np.ndarray:
    """(n + 1, n + 1) bool: True where the two-sided test rejects k_a, k_b of n each.

    Boschloo's p-value grows with Fisher's two-sided p-value (its ordering), so its
    region is every table whose Fisher p-value is at most the largest threshold c
    with ``max over pi of P(Fisher p <= c) <= alpha``, found by bisection.
    """
    test = check_test(test)
    if test == "z":
        k = np.arange(n + 1)
        pa, pb = k[:, None] / n, k[None, :] / n
        pbar = (pa + pb) / 2
        se = np.sqrt(pbar * (1 - pbar) * 2 / n)
        z = NormalDist().inv_cdf(1 - alpha / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(se > 0, np.abs(pa - pb) / np.where(se > 0, se, 1) >= z, False)
    fisher = _fisher_two_sided_all(n, n)
    if test == "fisher":
        return fisher <= alpha * (1 + 1e-9)
    if test == "mcnemar":
        raise UsageError("mcnemar is a paired test: plan it with a discordance rate")
    values = np.unique(fisher)

    def passes(i: int) -> bool:
        mask = (fisher <= values[i] * (1 + 1e-7)).astype(float)
        return _sup_over_nuisance(mask, n, n) <= alpha * (1 + 1e-9)

    lo, hi = -1, values.size  # values[lo] passes, values[hi] fails (virtually at the ends)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    if lo < 0:
        return np.zeros_like(fisher, dtype=bool)
    return fisher <= values[lo] * (1 + 1e-7)


def power_two_arms(p0: float, p1: float, n: int, test: str, alpha: float = 0.05) -> float:
    """Exact power of the two-sided `test` with `n` trials per arm at rates p0, p1.

    Example:
        >>> round(power_two_arms(0.5, 0.7, 93, "boschloo"), 3)
        0.791
    """
    from scipy.stats import binom

    region = rejection_region(n, test, alpha)
    k = np.arange(n + 1)
    return min(float(binom.pmf(k, n, p0) @ region @ binom.pmf(k, n, p1)), 1.0)


def mcnemar_region(m: int, alpha: float) -> np.ndarray:
    """(m + 1,) bool: True where McNemar's exact test rejects with b of m discordant."""
    from scipy.stats import binom

    b = np.arange(m + 1)
    p = np.minimum(1.0, 2 * binom.cdf(np.minimum(b, m - b), m, 0.5)) if m else np.ones(1)
    return p <= alpha * (1 + 1e-9)


def power_paired(p0: float, p1: float, discordance: float, n: int, alpha: float = 0.05) -> float:
    """Exact power of McNemar's exact test with `n` paired episodes.

    Each episode is discordant with probability `discordance`; A (rate p1) alone
    succeeds with probability (discordance + p1 - p0) / 2, B (rate p0) alone with
    (discordance - p1 + p0) / 2.
    """
    from scipy.stats import binom

    a_only, _ = _discordant_cells(p0, p1, discordance)
    theta = a_only / discordance
    total = 0.0
    for m in range(n + 1):
        weight = binom.pmf(m, n, discordance)
        if weight < 1e-300:
            continue
        region = mcnemar_region(m, alpha)
        total += weight * float(binom.pmf(np.arange(m + 1), m, theta) @ region)
    return min(float(total), 1.0)


def _discordant_cells(p0: float, p1: float, discordance: float) -> tuple[float, float]:
    a_only = (discordance + p1 - p0) / 2
    b_only = (discordance - p1 + p0) / 2
    both = p1 - a_only
    if not 0 < discordance <= 1 or b_only < 0 or both < 0 or both + a_only + b_only > 1:
        raise UsageError(
            f"a discordance rate of {discordance} is impossible for rates {p0} and {p1}: "
            f"it must lie between |p1 - p0| = {abs(p1 - p0):.3g} and "
            f"{min(p0 + p1, 2 - p0 - p1):.3g}"
        )
    return a_only, b_only


@dataclass(frozen=True)
class ExactPlan:
    """The smallest n reaching a target exact power.

    Attributes:
        test: the test planned for.
        trials: trials per policy (episodes, for a paired plan).
        power: the exact power at `trials`.
        target: the power asked for.
    """

    test: str
    trials: int
    power: float
    target: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return dict(self.__dict__)


def exact_trials_to_detect(
    p0: float,
    p1: float,
    test: str = "boschloo",
    alpha: float = 0.05,
    power: float = 0.8,
    discordance: float | None = None,
) -> ExactPlan:
    """Smallest n per policy whose exact power for p0 -> p1 reaches `power`.

    The scan goes up one trial at a time, for two arms from two thirds of the normal
    approximation's answer (far below any power target in practice), for
    paired episodes from 2.

    Args:
        p0, p1: the two success rates.
        test: ``boschloo``, ``fisher``, ``z`` (two independent arms) or ``mcnemar``
            (paired episodes; needs `discordance`).
        alpha: two-sided level.
        power: target power.
        discordance: for ``mcnemar``, the chance that the two policies disagree on
            an episode.
    """
    from vla_eval.stats.planning import trials_to_detect

    test = check_test(test)
    if (test == "mcnemar") != (discordance is not None):
        raise UsageError("a paired plan needs --test mcnemar and --discordance together")
    if test == "mcnemar":
        _discordant_cells(p0, p1, discordance)
    # Paired plans start at 2 (they are cheap); two-arm plans well below the formula.
    start = (
        2
        if test == "mcnemar"
        else max(2, math.floor(trials_to_detect(p0, p1, alpha, power) * 2 / 3))
    )
    if test != "mcnemar":
        _check_work(test, start, math.ceil(trials_to_detect(p0, p1, alpha, power) * 1.15))
    spent = 0.0
    for n in range(start, MAX_EXACT_TRIALS + 1):
        spent += (n + 1) ** 2
        if test != "mcnemar" and spent > 1.5 * WORK_LIMIT[test]:
            _too_much_work(test, spent)
        if test == "mcnemar":
            achieved = power_paired(p0, p1, discordance, n, alpha)
        else:
            achieved = power_two_arms(p0, p1, n, test, alpha)
        if achieved >= power:
            return ExactPlan(test, n, achieved, power)
    raise UsageError(f"more than {MAX_EXACT_TRIALS} trials per policy needed; plan with --test z")


def _check_work(test: str, first: int, last: int) -> None:
    """Refuse up front a search expected to enumerate more tables than `WORK_LIMIT`."""

    # sum of (n + 1)^2 for n = first..last, in closed form
    def squares(m: int) -> float:
        return m * (m + 1) * (2 * m + 1) / 6

    expected = squares(last + 1) - squares(first)
    if expected > WORK_LIMIT[test]:
        _too_much_work(test, expected)


def _too_much_work(test: str, tables: float) -> None:
    raise UsageError(
        f"exact {test} planning here means enumerating about {tables:.2g} tables "
        f"(limit {WORK_LIMIT[test]:.2g}): plan with --test z or fisher, a larger --alpha "
        "or a larger difference"
    )


def half_width_assurance(half_width: float, rate: float, n: int, confidence: float) -> float:
    """P(the Wilson half-width of K/n is at most `half_width`), K ~ Binomial(n, rate)."""
    from scipy.stats import binom

    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    k = np.arange(n + 1)
    ph = k / n
    hw = z / (1 + z * z / n) * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n))
    return min(float(binom.pmf(k, n, rate)[hw <= half_width * (1 + 1e-12)].sum()), 1.0)


def trials_for_half_width_assured(
    half_width: float, rate: float, confidence: float = 0.95, assurance: float = 0.8
) -> ExactPlan:
    """Fewest trials whose Wilson half-width is within target with chance `assurance`.

    Example:
        >>> trials_for_half_width_assured(0.05, 0.8, assurance=0.8).trials
        263
    """
    if not 0 < assurance < 1:
        raise UsageError(f"assurance must lie strictly between 0 and 1, got {assurance}")
    z2 = NormalDist().inv_cdf(1 - (1 - confidence) / 2) ** 2
    # Even 0/n has half-width z^2 / (2 (n + z^2)): no n below this can reach the target.
    start = max(1, math.floor(z2 / (2 * half_width) - z2))
    for n in range(start, 10**6):
        a = half_width_assurance(half_width, rate, n, confidence)
        if a >= assurance:
            return ExactPlan("wilson-half-width", n, a, assurance)
    raise UsageError(f"half-width {half_width} needs more than 10^6 trials")
