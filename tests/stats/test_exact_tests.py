"""Exact tests: Boschloo against its definition and scipy, Fisher, McNemar against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, boschloo_exact, fisher_exact
from statsmodels.stats.contingency_tables import mcnemar

from vla_eval.errors import UsageError
from vla_eval.stats.compare import test_pair
from vla_eval.stats.exact_tests import boschloo_p, fisher_p, mcnemar_p

counts = st.integers(1, 120).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


# --- Fisher and Boschloo ---------------------------------------------------------------


def _boschloo_brute_force(ka, na, kb, nb):
    """Two-sided Boschloo by definition: order tables by scipy's two-sided Fisher
    p-value, maximise the rejection-region probability over a dense grid of pi."""
    fisher = np.array(
        [
            [fisher_exact([[x, na - x], [y, nb - y]]).pvalue for y in range(nb + 1)]
            for x in range(na + 1)
        ]
    )
    region = fisher <= fisher[ka, kb] * (1 + 1e-7)
    pis = np.linspace(1e-6, 1 - 1e-6, 4001)
    pa = binom.pmf(np.arange(na + 1)[None, :], na, pis[:, None])
    pb = binom.pmf(np.arange(nb + 1)[None, :], nb, pis[:, None])
    return float(np.max(np.einsum("gi,ij,gj->g", pa, region, pb)))


@pytest.mark.parametrize(
    "table", [(17, 20, 10, 20), (3, 7, 0, 9), (5, 12, 9, 15), (0, 10, 0, 10), (8, 8, 3, 11)]
)
def test_boschloo_two_sided_matches_definition(table):
    assert boschloo_p(*table) == pytest.approx(_boschloo_brute_force(*table), abs=2e-6)


@given(counts, counts)
@settings(max_examples=40, deadline=None)
def test_boschloo_is_never_larger_than_fisher(a, b):
    (ka, na), (kb, nb) = a, b
    assert boschloo_p(ka, na, kb, nb) <= fisher_p(ka, na, kb, nb) * (1 + 1e-6) + 1e-9


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_boschloo_one_sided_is_scipy(alternative):
    ref = boschloo_exact([[17, 10], [3, 10]], alternative=alternative).pvalue
    assert boschloo_p(17, 20, 10, 20, alternative) == pytest.approx(ref, rel=1e-9)


def test_boschloo_two_sided_17_of_20_vs_10_of_20_is_scipy():
    # With one column per policy scipy gives the same p-value; the often-quoted
    # 0.020297 comes from the transposed table (rows as policies), another question.
    ref = boschloo_exact([[17, 10], [3, 10]]).pvalue
    assert boschloo_p(17, 20, 10, 20) == pytest.approx(ref, abs=1e-9)
    assert round(ref, 6) == 0.019617
    assert round(boschloo_exact([[17, 3], [10, 10]]).pvalue, 6) == 0.020297
    # With unequal trial counts scipy's two-sided p doubles the smaller one-sided
    # p-value, which is not Boschloo's ordering: 3/7 vs 0/9 differs.
    assert boschloo_exact([[3, 0], [4, 9]]).pvalue > boschloo_p(3, 7, 0, 9) + 5e-4


def test_boschloo_refuses_huge_tables_and_fisher_is_used():
    assert boschloo_p(3000, 5000, 2900, 5000) is None
    t = test_pair("a", 3000, 5000, "b", 2900, 5000)
    assert t.test == "fisher" and t.p_value == t.fisher_p


# --- McNemar ---------------------------------------------------------------------------


@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 30), st.integers(0, 30))
@settings(max_examples=80, deadline=None)
def test_mcnemar_matches_statsmodels(a_only, b_only, both, neither):
    ref = mcnemar([[both, a_only], [b_only, neither]], exact=True).pvalue
    assert mcnemar_p(a_only, b_only) == pytest.approx(min(1.0, ref), abs=1e-12)


def test_mcnemar_no_discordant_pairs_and_bad_input():
    assert mcnemar_p(0, 0) == 1.0
    with pytest.raises(UsageError):
        mcnemar_p(-1, 2)
