"""Exact power and sample sizes, against enumerations written out here with scipy/statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, binomtest, fisher_exact
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from vla_eval.errors import UsageError
from vla_eval.stats.exact_power import (
    exact_trials_to_detect,
    half_width_assurance,
    power_paired,
    power_two_arms,
    trials_for_half_width_assured,
)
from vla_eval.stats.planning import trials_for_half_width


def _power_by_enumeration(n, p0, p1, rejects):
    """Sum of P(k_a) P(k_b) over every table the test rejects."""
    return sum(
        binom.pmf(ka, n, p0) * binom.pmf(kb, n, p1)
        for ka in range(n + 1)
        for kb in range(n + 1)
        if rejects(ka, kb)
    )


def test_fisher_power_is_the_enumeration():
    n = 15

    def rejects(ka, kb):
        return fisher_exact([[ka, n - ka], [kb, n - kb]]).pvalue <= 0.05

    expected = _power_by_enumeration(n, 0.3, 0.8, rejects)
    assert power_two_arms(0.3, 0.8, n, "fisher") == pytest.approx(expected, abs=1e-12)


def test_z_power_is_the_enumeration_with_statsmodels():
    n = 30

    def rejects(ka, kb):
        if ka + kb in (0, 2 * n):
            return False  # no variance: statsmodels gives nan, nothing is rejected
        return proportions_ztest([ka, kb], [n, n])[1] <= 0.05

    expected = _power_by_enumeration(n, 0.5, 0.75, rejects)
    assert power_two_arms(0.5, 0.75, n, "z") == pytest.approx(expected, abs=1e-12)


def test_boschloo_power_is_the_enumeration_of_its_definition():
    n = 10
    fisher = np.array(
        [
            [fisher_exact([[x, n - x], [y, n - y]]).pvalue for y in range(n + 1)]
            for x in range(n + 1)
        ]
    )
    pis = np.linspace(1e-6, 1 - 1e-6, 4001)
    pmf = binom.pmf(np.arange(n + 1)[None, :], n, pis[:, None])

    def boschloo(ka, kb):
        region = fisher <= fisher[ka, kb] * (1 + 1e-7)
        return np.max(np.einsum("gi,ij,gj->g", pmf, region, pmf))

    expected = _power_by_enumeration(n, 0.2, 0.8, lambda a, b: boschloo(a, b) <= 0.05)
    assert power_two_arms(0.2, 0.8, n, "boschloo") == pytest.approx(expected, abs=1e-9)
    assert power_two_arms(0.2, 0.8, n, "boschloo") >= power_two_arms(0.2, 0.8, n, "fisher")


def test_mcnemar_power_is_the_multinomial_enumeration():
    n, p0, p1, disc = 25, 0.5, 0.7, 0.3
    a_only, b_only = (disc + p1 - p0) / 2, (disc - p1 + p0) / 2
    expected = 0.0
    for b in range(n + 1):
        for c in range(n + 1 - b):
            p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
            if p <= 0.05:
                # multinomial: b A-only, c B-only, the rest concordant
                prob = binom.pmf(b, n, a_only) * binom.pmf(c, n - b, b_only / (1 - a_only))
                expected += prob
    assert power_paired(p0, p1, disc, n) == pytest.approx(expected, abs=1e-12)


def test_boschloo_needs_more_than_the_normal_formula_says():
    # The formula says 93 per arm for 0.5 -> 0.7; Boschloo's exact power there is ~79%.
    assert power_two_arms(0.5, 0.7, 93, "boschloo") == pytest.approx(0.79, abs=0.01)
    plan = exact_trials_to_detect(0.5, 0.7, "boschloo")
    assert plan.trials > 93 and plan.power >= 0.8


@pytest.mark.parametrize("p0, p1", [(0.5, 0.7), (0.2, 0.6), (0.9, 0.6)])
def test_exact_plan_is_the_first_n_reaching_the_power(p0, p1):
    plan = exact_trials_to_detect(p0, p1, "z")
    n = plan.trials

    def rejects_at(m):
        return lambda ka, kb: (
            ka + kb not in (0, 2 * m) and (proportions_ztest([ka, kb], [m, m])[1] <= 0.05)
        )

    assert _power_by_enumeration(n, p0, p1, rejects_at(n)) >= 0.8
    assert _power_by_enumeration(n - 1, p0, p1, rejects_at(n - 1)) < 0.8


def test_paired_plan_and_impossible_discordance():
    plan = exact_trials_to_detect(0.5, 0.7, "mcnemar", discordance=0.3)
    assert (
        power_paired(0.5, 0.7, 0.3, plan.trials)
        >= 0.8
        > power_paired(0.5, 0.7, 0.3, plan.trials - 1)
    )
    with pytest.raises(UsageError, match="impossible"):
        exact_trials_to_detect(0.5, 0.7, "mcnemar", discordance=0.1)  # below |p1 - p0|
    with pytest.raises(UsageError):
        exact_trials_to_detect(0.5, 0.7, "mcnemar")


def _assurance_by_enumeration(h, p, n):
    k = np.arange(n + 1)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return binom.pmf(k, n, p)[(hi - lo) / 2 <= h + 1e-12].sum()


def test_half_width_with_assurance():
    # The plain plan at p = 0.8 reaches its half-width only about half the time.
    n_plain = trials_for_half_width(0.05, 0.8)
    assert 0.3 < _assurance_by_enumeration(0.05, 0.8, n_plain) < 0.7
    plan = trials_for_half_width_assured(0.05, 0.8, assurance=0.8)
    assert _assurance_by_enumeration(0.05, 0.8, plan.trials) >= 0.8
    assert _assurance_by_enumeration(0.05, 0.8, plan.trials - 1) < 0.8
    assert half_width_assurance(0.05, 0.8, plan.trials, 0.95) == pytest.approx(
        _assurance_by_enumeration(0.05, 0.8, plan.trials), abs=1e-12
    )


def test_a_search_too_large_for_exact_enumeration_is_refused_up_front():
    """alpha = 1e-5 would scan Boschloo tables for minutes: refused at once, saying why.

    The scan from 2/3 of the normal formula's 330 per arm to 1.15 times it covers
    sum((n + 1)^2) of about 1.5e7 tables, ten times the Boschloo limit.
    """
    from vla_eval.stats.exact_power import WORK_LIMIT, exact_trials_to_detect

    with pytest.raises(UsageError, match="--test z"):
        exact_trials_to_detect(0.5, 0.7, "boschloo", alpha=1e-5)
    expected = sum((n + 1) ** 2 for n in range(220, 381))
    assert expected > WORK_LIMIT["boschloo"]
