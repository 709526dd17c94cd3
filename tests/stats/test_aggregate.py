"""Pooled rate and the stratified-bootstrap macro mean."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from vla_eval.errors import UsageError
from vla_eval.stats.aggregate import macro_mean, pooled_rate


def test_pooled_rate_is_wilson_of_the_totals():
    ci = pooled_rate([17, 3, 40], [20, 10, 50], confidence=0.9)
    lo, hi = proportion_confint(60, 80, alpha=0.1, method="wilson")
    assert ci.estimate == pytest.approx(0.75)
    assert (ci.lower, ci.upper) == pytest.approx((lo, hi), abs=1e-12)


def test_macro_mean_estimate_and_reproducibility():
    k, n = [18, 2, 10], [20, 20, 40]
    a = macro_mean(k, n, rng=123, n_bootstrap=2000)
    b = macro_mean(k, n, rng=np.random.default_rng(123), n_bootstrap=2000)
    assert a.estimate == pytest.approx((0.9 + 0.1 + 0.25) / 3)
    assert (a.lower, a.upper) == (b.lower, b.upper)
    assert a.seed == 123 and b.seed is None
    assert a.lower < a.estimate < a.upper


def test_macro_mean_matches_an_episode_level_stratified_bootstrap():
    """Independent check: resample 0/1 outcomes within each task with numpy.choice."""
    k, n = np.array([14, 5, 30]), np.array([20, 10, 60])
    rng = np.random.default_rng(7)
    outcomes = [np.r_[np.ones(ki), np.zeros(ni - ki)] for ki, ni in zip(k, n, strict=True)]
    reps = np.array(
        [
            np.mean([rng.choice(o, size=o.size, replace=True).mean() for o in outcomes])
            for _ in range(4000)
        ]
    )
    lo_ref, hi_ref = np.quantile(reps, [0.025, 0.975])
    m = macro_mean(k, n, rng=1, n_bootstrap=20_000)
    # Two independent Monte-Carlo estimates of the same quantiles.
    assert m.lower == pytest.approx(lo_ref, abs=0.02)
    assert m.upper == pytest.approx(hi_ref, abs=0.02)
    # and the bootstrap standard error is the analytic one, sqrt(sum p q / n) / T.
    p = k / n
    se = np.sqrt(np.sum(p * (1 - p) / n)) / len(n)
    assert (m.upper - m.lower) / (2 * 1.96) == pytest.approx(se, rel=0.08)


def test_macro_weighs_tasks_equally_unlike_pooled():
    k, n = [190, 2], [200, 20]
    assert pooled_rate(k, n).estimate == pytest.approx(192 / 220)
    assert macro_mean(k, n, rng=0, n_bootstrap=500).estimate == pytest.approx((0.95 + 0.1) / 2)


@pytest.mark.parametrize(
    ("k", "n", "message"),
    [
        ([], [], "no tasks"),
        ([1, 2], [3], "equal-length"),
        ([1], [0], "at least one trial"),
        ([4], [3], "between 0 and trials"),
        ([1.5], [3], "whole numbers"),
    ],
)
def test_bad_counts(k, n, message):
    with pytest.raises(UsageError, match=message):
        macro_mean(k, n)


def test_bad_rng_and_bootstrap_size():
    with pytest.raises(UsageError, match="rng"):
        macro_mean([1], [2], rng="seed")
    with pytest.raises(UsageError, match="n_bootstrap"):
        macro_mean([1], [2], n_bootstrap=10)


@given(
    st.lists(st.tuples(st.integers(1, 60), st.floats(0, 1)), min_size=1, max_size=8),
    st.integers(0, 2**31),
)
@settings(max_examples=40, deadline=None)
def test_macro_interval_brackets_estimate_and_stays_in_unit_interval(tasks, seed):
    n = np.array([t[0] for t in tasks])
    k = np.floor(np.array([t[1] for t in tasks]) * n).astype(int)
    m = macro_mean(k, n, rng=seed, n_bootstrap=500)
    assert 0.0 <= m.lower <= m.estimate + 1e-12
    assert m.estimate - 1e-12 <= m.upper <= 1.0


# --- coverage of the macro-mean interval ------------------------------------------------


def _multisets(values, size):
    from itertools import combinations_with_replacement

    return list(combinations_with_replacement(values, size))


def test_macro_interval_covers_within_1_5_points_at_5_tasks_by_10_trials():
    """Exact coverage with every task at the same rate: each outcome (k_1..k_5) is
    weighted by its multinomial probability; the interval only depends on the
    multiset of counts, so 3003 intervals cover all 161,051 outcomes."""
    from math import factorial

    from scipy.stats import binom

    from vla_eval.stats.aggregate import macro_mean_interval

    tasks, n = 5, 10
    outcomes = _multisets(range(n + 1), tasks)
    bounds = np.array(
        [
            (lambda m: (m.lower, m.upper))(macro_mean_interval(list(o), [n] * tasks))
            for o in outcomes
        ]
    )
    counts = np.array(outcomes)
    perms = np.array(
        [
            factorial(tasks) / np.prod([factorial(list(o).count(v)) for v in set(o)])
            for o in outcomes
        ]
    )
    for p in np.round(np.arange(0.10, 0.951, 0.05), 2):
        weight = perms * binom.pmf(counts, n, p).prod(axis=1)
        assert weight.sum() == pytest.approx(1.0, abs=1e-9)
        cover = weight[(bounds[:, 0] <= p) & (p <= bounds[:, 1])].sum()
        assert abs(cover - 0.95) <= 0.015, (p, cover)


def test_macro_interval_covers_mixed_rates_by_simulation():
    from vla_eval.stats.aggregate import macro_mean_interval

    rng = np.random.default_rng(2024)
    for _ in range(4):
        rates = rng.uniform(0.1, 0.95, 5)
        k = rng.binomial(10, rates, size=(1500, 5))
        hits = 0
        for row in k:
            m = macro_mean_interval(row, np.full(5, 10))
            hits += m.lower <= rates.mean() <= m.upper
        # 1,500 draws: standard error about 0.5 points. The bounds allow 1.5 points
        # under nominal less three standard errors; mixed rates are somewhat
        # conservative (exact coverage up to 97.3%).
        assert 0.935 - 0.015 <= hits / 1500 <= 0.985, (rates, hits / 1500)
