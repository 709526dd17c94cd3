"""Binomial intervals against scipy and statsmodels, computed here, and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta, binomtest, norm
from statsmodels.stats.proportion import proportion_confint

from vla_eval.errors import UsageError
from vla_eval.stats.intervals import METHODS, binomial_interval

TOL = 1e-9

# (k, n) grid: small robot-evaluation sizes, the edges, and a very large n.
GRID = [(k, n) for n in (1, 2, 3, 5, 10, 20, 37, 50, 100) for k in range(0, n + 1, max(1, n // 7))]
GRID += [(n, n) for n in (1, 5, 20, 100)] + [(0, 1_000_000), (1, 1_000_000)]
GRID += [(500_000, 1_000_000), (999_999, 1_000_000), (1_000_000, 1_000_000)]
CONFIDENCES = (0.8, 0.9, 0.95, 0.99, 0.999)


def reference(k: int, n: int, c: float, method: str) -> tuple[float, float]:
    """The same interval from scipy/statsmodels (independent implementations)."""
    if method == "wilson":
        ci = binomtest(k, n).proportion_ci(confidence_level=c, method="wilson")
        sm = proportion_confint(k, n, alpha=1 - c, method="wilson")
        assert ci.low == pytest.approx(sm[0], abs=TOL) and ci.high == pytest.approx(sm[1], abs=TOL)
        return ci.low, ci.high
    if method == "wilson-cc":
        ci = binomtest(k, n).proportion_ci(confidence_level=c, method="wilsoncc")
        # scipy leaves the formula's value; Newcombe (1998) truncates to [0, 1].
        return max(ci.low, 0.0), min(ci.high, 1.0)
    if method == "clopper-pearson":
        ci = binomtest(k, n).proportion_ci(confidence_level=c, method="exact")
        sm = proportion_confint(k, n, alpha=1 - c, method="beta")
        assert ci.low == pytest.approx(sm[0], abs=TOL) and ci.high == pytest.approx(sm[1], abs=TOL)
        return ci.low, ci.high
    if method == "jeffreys":
        return tuple(proportion_confint(k, n, alpha=1 - c, method="jeffreys"))
    if method == "agresti-coull":
        return tuple(proportion_confint(k, n, alpha=1 - c, method="agresti_coull"))
    raise AssertionError(method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("confidence", CONFIDENCES)
def test_matches_scipy_and_statsmodels_over_grid(method: str, confidence: float) -> None:
    for k, n in GRID:
        ci = binomial_interval(k, n, confidence, method)
        lo, hi = reference(k, n, confidence, method)
        assert ci.lower == pytest.approx(lo, abs=TOL), (k, n)
        assert ci.upper == pytest.approx(hi, abs=TOL), (k, n)
        assert ci.estimate == k / n


@pytest.mark.parametrize("method", METHODS)
def test_vectorised_equals_scalar(method: str) -> None:
    ks = np.array([k for k, _ in GRID])
    ns = np.array([n for _, n in GRID])
    arr = binomial_interval(ks, ns, 0.95, method)
    assert arr.lower.shape == ks.shape
    for i, (k, n) in enumerate(GRID):
        one = binomial_interval(k, n, 0.95, method)
        assert arr.lower[i] == pytest.approx(one.lower, abs=1e-12)
        assert arr.upper[i] == pytest.approx(one.upper, abs=1e-12)


def test_broadcasts_counts_against_a_common_n() -> None:
    ci = binomial_interval(np.arange(21), 20)
    assert ci.lower.shape == (21,)
    assert np.all(np.diff(ci.lower) > 0) and np.all(np.diff(ci.upper) > 0)


def test_known_value_17_of_20() -> None:
    ci = binomial_interval(17, 20)
    assert round(ci.lower, 5) == 0.63958
    assert round(ci.upper, 5) == 0.94763
    assert ci.describe() == "17/20 = 85.0% (95% Wilson CI 64.0%-94.8%)"


def test_wilson_by_hand() -> None:
    # Wilson (1927): (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    k, n, z = 3, 10, norm.ppf(0.975)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    ci = binomial_interval(k, n)
    assert ci.lower == pytest.approx(centre - half, abs=1e-12)
    assert ci.upper == pytest.approx(centre + half, abs=1e-12)


def test_edges() -> None:
    for method in ("wilson", "wilson-cc", "clopper-pearson"):
        zero = binomial_interval(0, 20, method=method)
        full = binomial_interval(20, 20, method=method)
        assert zero.lower == 0.0 and full.upper == 1.0
        assert zero.upper < 1.0 and full.lower > 0.0
    # 0/n Clopper-Pearson upper bound has the closed form 1 - (alpha/2)^(1/n).
    assert binomial_interval(0, 20, method="clopper-pearson").upper == pytest.approx(
        1 - 0.025 ** (1 / 20), abs=1e-12
    )
    one = binomial_interval(1, 1)
    assert one.estimate == 1.0 and one.upper == 1.0 and 0 < one.lower < 1
    # two-sided 95%: the upper bound at 0/n is near -ln(0.025)/n = 3.69/n, not the
    # one-sided "rule of three" 3/n (-ln 0.05 = 3.00)
    big = binomial_interval(0, 1_000_000, method="clopper-pearson")
    assert big.upper == pytest.approx(-math.log(0.025) / 1_000_000, rel=1e-5)
    # n/n: the lower bound solves p^n = 0.025
    assert binomial_interval(20, 20, method="clopper-pearson").lower == pytest.approx(
        0.025 ** (1 / 20), abs=1e-12
    )
    # Jeffreys has the posterior quantile, not 0, at k = 0
    assert binomial_interval(0, 20, method="jeffreys").lower == pytest.approx(
        beta.ppf(0.025, 0.5, 20.5), abs=1e-12
    )


@pytest.mark.parametrize(
    ("k", "n", "c", "method", "fragment"),
    [
        (21, 20, 0.95, "wilson", "cannot exceed"),
        (-1, 20, 0.95, "wilson", "negative"),
        (2.5, 20, 0.95, "wilson", "whole number"),
        (2, 20.5, 0.95, "wilson", "whole number"),
        (True, 20, 0.95, "wilson", "whole number"),
        (0, 0, 0.95, "wilson", "at least 1"),
        (1, 2, 0.0, "wilson", "between 0 and 1"),
        (1, 2, 1.0, "wilson", "between 0 and 1"),
        (1, 2, float("nan"), "wilson", "between 0 and 1"),
        (1, 2, 0.95, "wald", "unknown interval method"),
    ],
)
def test_bad_input_raises_usage_error(k, n, c, method, fragment) -> None:
    with pytest.raises(UsageError, match=fragment):
        binomial_interval(k, n, c, method)


def test_bad_array_input() -> None:
    with pytest.raises(UsageError, match="cannot exceed"):
        binomial_interval(np.array([1, 5]), np.array([2, 4]))
    with pytest.raises(UsageError, match="whole numbers"):
        binomial_interval(np.array([1.5]), np.array([2]))
    with pytest.raises(UsageError, match="at least 1"):
        binomial_interval(np.array([0]), np.array([0]))


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 5000),
    frac=st.floats(0, 1),
    confidence=st.floats(0.5, 0.999),
    method=st.sampled_from(METHODS),
)
def test_properties(n: int, frac: float, confidence: float, method: str) -> None:
    k = round(frac * n)
    ci = binomial_interval(k, n, confidence, method)
    assert 0.0 <= ci.lower <= ci.upper <= 1.0
    assert not math.isnan(ci.lower) and not math.isnan(ci.upper)
    # every method here contains the point estimate except Jeffreys at the edges
    if method != "jeffreys" or 0 < k < n:
        assert ci.lower <= k / n + 1e-12 and k / n <= ci.upper + 1e-12
    # symmetry: the interval for n - k successes is the mirror image
    mirror = binomial_interval(n - k, n, confidence, method)
    assert mirror.lower == pytest.approx(1 - ci.upper, abs=1e-9)
    assert mirror.upper == pytest.approx(1 - ci.lower, abs=1e-9)
    # higher confidence never gives a narrower interval
    wider = binomial_interval(k, n, min(0.9999, confidence + 0.0005), method)
    assert wider.lower <= ci.lower + 1e-12 and wider.upper >= ci.upper - 1e-12


# --- coverage claims in docs/statistics.md ---------------------------------------------


def _coverage(n, method, p):
    """Exact coverage at each p of statsmodels' interval: sum of P(K = k) over the k
    whose interval contains p."""
    from scipy.stats import binom
    from statsmodels.stats.proportion import proportion_confint

    k = np.arange(n + 1)
    sm = {"wilson": "wilson", "jeffreys": "jeffreys"}[method]
    lo, hi = proportion_confint(k, n, alpha=0.05, method=sm)
    if method == "wilson":  # statsmodels leaves float dust at the ends
        lo, hi = np.where(k == 0, 0.0, lo), np.where(k == n, 1.0, hi)
    inside = (lo[None, :] <= p[:, None]) & (p[:, None] <= hi[None, :])
    return (binom.pmf(k[None, :], n, p[:, None]) * inside).sum(axis=1), lo, hi


@pytest.mark.parametrize("n", [10, 20, 100])
def test_jeffreys_average_coverage_is_closer_to_nominal_than_wilson(n):
    p = (np.arange(40_000) + 0.5) / 40_000  # midpoint rule over (0, 1)
    wilson_mean = _coverage(n, "wilson", p)[0].mean()
    jeffreys_mean = _coverage(n, "jeffreys", p)[0].mean()
    assert abs(jeffreys_mean - 0.95) < abs(wilson_mean - 0.95)


@pytest.mark.parametrize("n, lowest", [(10, 0.835), (20, 0.894)])
def test_wilson_dips_far_below_what_a_coarse_grid_shows(n, lowest):
    _, lo, hi = _coverage(n, "wilson", np.array([0.5]))
    ends = np.concatenate([lo, hi])
    # coverage jumps at every endpoint: its infimum is approached just beside one
    p = np.concatenate([ends - 1e-10, ends + 1e-10, np.linspace(0.01, 0.99, 9801)])
    p = p[(p >= 0.01) & (p <= 0.99)]
    infimum = _coverage(n, "wilson", p)[0].min()
    grid = _coverage(n, "wilson", np.round(np.arange(1, 100) / 100, 2))[0].min()
    assert infimum == pytest.approx(lowest, abs=1e-3)
    assert grid > infimum + 0.02  # a 0.01 grid of p misses the worst case
