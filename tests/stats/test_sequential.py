"""Anytime-valid statistics: coverage and error rates under continuous monitoring.

Every simulation checks the result at *every* number of trials (the worst way to
peek) with fixed seeds; the oracles for the formulas are scipy's beta-binomial and
binomial distributions.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import betabinom, binom

from vla_eval.errors import UsageError
from vla_eval.stats.intervals import binomial_interval
from vla_eval.stats.sequential import compare_sequentially, confidence_sequence

HORIZON = 150


@pytest.fixture(scope="module")
def bounds():
    """(HORIZON + 1, HORIZON + 1) lower and upper bounds for s successes in t trials."""
    lo, hi = np.zeros((HORIZON + 1, HORIZON + 1)), np.ones((HORIZON + 1, HORIZON + 1))
    for t in range(1, HORIZON + 1):
        for s in range(t + 1):
            cs = confidence_sequence(s, t)
            lo[s, t], hi[s, t] = cs.lower, cs.upper
    return lo, hi


def test_bounds_are_where_the_mixture_ratio_reaches_one_over_alpha():
    # Mixture (beta-binomial, Beta(1/2, 1/2)) over the binomial at p: the binomial
    # coefficients cancel, leaving the likelihood ratio of the observed sequence.
    for s, t in [(17, 20), (3, 40), (50, 100), (0, 30), (30, 30)]:
        cs = confidence_sequence(s, t)
        for p in (cs.lower, cs.upper):
            if 0 < p < 1:
                ratio = betabinom.pmf(s, t, 0.5, 0.5) / binom.pmf(s, t, p)
                assert ratio == pytest.approx(20.0, rel=1e-6)
        inside = (cs.lower + cs.upper) / 2
        assert betabinom.pmf(s, t, 0.5, 0.5) / binom.pmf(s, t, inside) < 20


@pytest.mark.slow
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8, 0.95])
def test_confidence_sequence_covers_under_continuous_monitoring(bounds, p):
    lo, hi = bounds
    rng = np.random.default_rng(int(p * 1000))
    x = rng.random((4000, HORIZON)) < p
    s = x.cumsum(axis=1)
    t = np.arange(1, HORIZON + 1)
    missed = ((lo[s, t] > p) | (hi[s, t] < p)).any(axis=1).mean()
    assert missed <= 0.05, missed


def test_peeking_at_a_wilson_interval_misses_far_more_than_5_percent():
    # The numbers docs/statistics.md quotes: p = 0.5, 100 trials.
    rng = np.random.default_rng(0)
    x = rng.random((20_000, 100)) < 0.5
    s = x.cumsum(axis=1)
    ci = binomial_interval(s, np.arange(1, 101)[None, :], 0.95)
    miss = (ci.lower > 0.5) | (ci.upper < 0.5)
    assert miss[:, -1].mean() == pytest.approx(0.057, abs=0.01)  # one look: ~5%
    assert miss[:, 9::10].any(axis=1).mean() == pytest.approx(0.17, abs=0.015)
    assert miss.any(axis=1).mean() == pytest.approx(0.36, abs=0.015)


def test_e_value_is_the_mixture_ratio_against_a_fair_coin():
    for b, c in [(12, 1), (3, 3), (0, 9), (40, 25)]:
        expected = betabinom.pmf(b, b + c, 0.5, 0.5) / binom.pmf(b, b + c, 0.5)
        assert compare_sequentially(b, c, 100).e_value == pytest.approx(expected, rel=1e-9)
    assert compare_sequentially(0, 0, 10).e_value == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("rates", [(0.5, 0.5), (0.8, 0.8), (0.2, 0.2)])
def test_sequential_comparison_type_one_error_under_continuous_monitoring(rates):
    pairs = 400
    table = np.zeros((pairs + 1, pairs + 1), dtype=bool)
    for m in range(pairs + 1):
        for b in range(m + 1):
            table[b, m - b] = compare_sequentially(b, m - b, pairs).decided
    rng = np.random.default_rng(11)
    a = rng.random((3000, pairs)) < rates[0]
    bb = rng.random((3000, pairs)) < rates[1]
    a_only, b_only = (a & ~bb).cumsum(axis=1), (~a & bb).cumsum(axis=1)
    false_alarm = table[a_only, b_only].any(axis=1).mean()
    assert false_alarm <= 0.05, false_alarm


def test_sequential_input_checks():
    with pytest.raises(UsageError):
        confidence_sequence(5, 4)
    with pytest.raises(UsageError):
        compare_sequentially(5, 6, 10)
    with pytest.raises(UsageError):
        compare_sequentially(1, 1, 10, alpha=1.5)
