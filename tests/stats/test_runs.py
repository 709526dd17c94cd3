"""Training runs x tasks: IQM, probability of improvement, two-level bootstrap, spread."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from vla_eval.errors import UsageError
from vla_eval.stats.runs import (
    improvement_interval,
    iqm,
    probability_of_improvement,
    resample_runs,
    runs_interval,
    spread,
)


def test_iqm_is_the_mean_of_the_middle_half():
    rates = np.array([[0.0, 0.1, 0.2, 0.3], [0.4, 0.5, 0.6, 1.0]])
    # 8 sorted values; the middle half is 0.2, 0.3, 0.4, 0.5
    assert float(iqm(rates)) == pytest.approx((0.2 + 0.3 + 0.4 + 0.5) / 4)
    # one diverged run moves the mean much more than the IQM
    good = np.full((5, 4), 0.8)
    bad = good.copy()
    bad[0] = 0.0
    assert float(iqm(good)) - float(iqm(bad)) < good.mean() - bad.mean()


def test_probability_of_improvement_is_mann_whitney_over_tasks():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 11, (5, 3)) / 10
    y = rng.integers(0, 11, (4, 3)) / 10
    expected = np.mean([mannwhitneyu(x[:, t], y[:, t]).statistic / (5 * 4) for t in range(3)])
    assert float(probability_of_improvement(x, y)) == pytest.approx(expected, abs=1e-12)
    assert float(probability_of_improvement(x, x)) == pytest.approx(0.5)


def test_two_level_bootstrap_draws_runs_then_episodes():
    k = np.array([[20, 20], [0, 0]])
    n = np.full((2, 2), 20)
    reps = resample_runs(k, n, np.random.default_rng(0), 4000)
    # every (run, task) at 0% or 100%: episodes add nothing, only which runs are drawn
    means = reps.mean(axis=(1, 2))
    assert set(np.round(means, 12)) <= {0.0, 0.5, 1.0}
    assert np.mean(means == 0.5) == pytest.approx(0.5, abs=0.03)  # P(one of each) = 1/2


def test_runs_interval_is_wider_when_seeds_disagree_and_reproducible():
    n = np.full((4, 3), 20)
    same = np.full((4, 3), 14)
    spread_out = np.array([[19, 19, 18], [9, 8, 10], [18, 17, 19], [10, 12, 9]])
    a = runs_interval(same, n, rng=1)
    b = runs_interval(spread_out, n, rng=1)
    assert (b.upper - b.lower) > 1.5 * (a.upper - a.lower)
    assert runs_interval(spread_out, n, rng=1) == b
    assert runs_interval(spread_out, n, "iqm", rng=1).statistic == "iqm"


def test_improvement_interval():
    n = np.full((5, 2), 20)
    x = np.array([[18, 17], [19, 16], [17, 18], [18, 19], [16, 17]])
    y = np.array([[10, 11], [12, 9], [11, 10], [9, 12], [10, 10]])
    r = improvement_interval((x, n), (y, n), rng=0, n_bootstrap=1000)
    assert r.estimate == 1.0 and r.lower > 0.9
    with pytest.raises(UsageError):
        improvement_interval((x, n), (y[:, :1], n[:, :1]))


def test_spread_by_hand_and_unbiased_without_seed_effects():
    # two runs, one task: 9/10 and 5/10
    s = spread([[9], [5]], [[10], [10]])
    assert s["between_runs"] == pytest.approx(0.08)  # ((0.2)^2 * 2) / 1
    assert s["episodes"] == pytest.approx((0.9 * 0.1 / 9 + 0.5 * 0.5 / 9) / 2)
    assert s["seeds"] == pytest.approx(0.08 - s["episodes"])
    # every run the same true rate: the observed variance is episode noise on average
    rng = np.random.default_rng(5)
    k = rng.binomial(20, 0.7, size=(4000, 5, 1))
    excess = [
        np.var(k[i, :, 0] / 20, ddof=1) - np.mean((k[i, :, 0] / 20) * (1 - k[i, :, 0] / 20) / 19)
        for i in range(4000)
    ]
    assert abs(np.mean(excess)) < 0.0005
    with pytest.raises(UsageError):
        spread([[3]], [[10]])
