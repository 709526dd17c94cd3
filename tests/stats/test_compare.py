"""Two-policy comparisons: Newcombe interval, the pair test, Holm, letters, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep

from vla_eval.errors import UsageError
from vla_eval.stats.compare import (
    compact_letters,
    holm,
    newcombe_difference,
    test_pair,
    verdict,
)
from vla_eval.stats.exact_tests import boschloo_p, fisher_p
from vla_eval.stats.intervals import binomial_interval

# --- known values: 17/20 vs 10/20 ----------------------------------------------------


def test_known_values_17_of_20_vs_10_of_20():
    d = newcombe_difference(17, 20, 10, 20)
    assert d.estimate == pytest.approx(0.35)
    assert (d.lower, d.upper) == pytest.approx((0.059212, 0.573189), abs=5e-7)
    ref = confint_proportions_2indep(17, 20, 10, 20, method="newcomb", compare="diff")
    assert (d.lower, d.upper) == pytest.approx(ref, abs=1e-12)
    assert fisher_p(17, 20, 10, 20) == pytest.approx(0.040742, abs=5e-7)
    assert fisher_p(17, 20, 10, 20) == pytest.approx(
        fisher_exact([[17, 3], [10, 10]]).pvalue, rel=1e-12
    )
    assert boschloo_p(17, 20, 10, 20) == pytest.approx(0.019617, abs=5e-7)


# --- Newcombe against statsmodels ------------------------------------------------------

counts = st.integers(1, 120).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(counts, counts, st.sampled_from([0.8, 0.9, 0.95, 0.99]))
@settings(max_examples=150, deadline=None)
def test_newcombe_matches_statsmodels(a, b, confidence):
    (ka, na), (kb, nb) = a, b
    d = newcombe_difference(ka, na, kb, nb, confidence)
    lo, hi = confint_proportions_2indep(
        ka, na, kb, nb, method="newcomb", compare="diff", alpha=1 - confidence
    )
    assert d.lower == pytest.approx(lo, abs=1e-9)
    assert d.upper == pytest.approx(hi, abs=1e-9)
    assert -1 <= d.lower <= d.estimate <= d.upper <= 1


def test_newcombe_is_vectorised():
    d = newcombe_difference(np.array([17, 0]), 20, np.array([10, 20]), 20)
    for i, (ka, kb) in enumerate([(17, 10), (0, 20)]):
        one = newcombe_difference(ka, 20, kb, 20)
        assert (d.lower[i], d.upper[i]) == pytest.approx((one.lower, one.upper))


def test_paired_data_uses_mcnemar_and_is_more_powerful_here():
    # 40 shared seeds: A wins 12 seeds B loses, B wins 2 seeds A loses.
    t = test_pair("a", 30, 40, "b", 20, 40, discordant=(40, 12, 2))
    assert t.test == "mcnemar-exact"
    assert t.p_value == pytest.approx(mcnemar([[18, 12], [2, 8]], exact=True).pvalue)
    assert t.p_value < t.fisher_p


# --- Holm and the compact letters ----------------------------------------------------


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
@settings(max_examples=25, deadline=None)
def test_holm_matches_hand_computation(p):
    p = np.array(p)
    order = np.argsort(p)
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    expected = np.empty(m)
    expected[order] = np.minimum(stepped, 1.0)
    assert holm(p.tolist()) == pytest.approx(expected.tolist(), abs=1e-12)


def test_compact_letters():
    none = np.zeros((3, 3), dtype=bool)
    assert compact_letters(["a", "b", "c"], [0.5, 0.6, 0.7], none) == {
        "a": "a",
        "b": "a",
        "c": "a",
    }
    all_diff = ~np.eye(3, dtype=bool)
    assert compact_letters(["a", "b", "c"], [0.5, 0.6, 0.7], all_diff) == {
        "c": "a",
        "b": "b",
        "a": "c",
    }
    # best (x) differs only from the worst (z): x and y share a, y and z share b.
    diff = np.array([[0, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=bool)
    assert compact_letters(["x", "y", "z"], [0.9, 0.7, 0.5], diff) == {
        "x": "a",
        "y": "ab",
        "z": "b",
    }
    # x-y and y-z differ, x-z do not: x and z must share a letter (a line display
    # cannot show this; insert-absorb can).
    diff = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
    letters = compact_letters(["x", "y", "z"], [0.9, 0.7, 0.5], diff)
    assert set(letters["x"]) & set(letters["z"])
    assert not set(letters["y"]) & (set(letters["x"]) | set(letters["z"]))


@given(
    st.integers(2, 7).flatmap(
        lambda m: st.tuples(st.just(m), st.lists(st.booleans(), min_size=m * m, max_size=m * m))
    ),
    st.randoms(use_true_random=False),
)
@settings(max_examples=150, deadline=None)
def test_compact_letters_share_a_letter_exactly_when_not_different(case, rnd):
    m, bits = case
    upper = np.triu(np.array(bits, dtype=bool).reshape(m, m), 1)
    different = upper | upper.T
    names = [f"p{i}" for i in range(m)]
    rates = [rnd.random() for _ in range(m)]
    letters = compact_letters(names, rates, different)
    for i in range(m):
        assert letters[names[i]]
        for j in range(i + 1, m):
            share = bool(set(letters[names[i]]) & set(letters[names[j]]))
            assert share == (not different[i, j]), (i, j, letters)


def test_verdict_wording():
    sig = test_pair("base", 10, 20, "tuned", 17, 20)
    assert verdict(sig, 0.05).startswith("tuned beats base by +35.0 points")
    same = test_pair("base", 10, 20, "tuned", 11, 20)
    text = verdict(same, 0.05)
    assert text.startswith("No significant difference") and "cannot tell" in text


@pytest.mark.parametrize(
    "args", [(21, 20, 1, 2), (1, 0, 1, 2), (-1, 5, 1, 2), (1.5, 5, 1, 2), (True, 5, 1, 2)]
)
def test_bad_counts(args):
    with pytest.raises(UsageError):
        fisher_p(*args)


# --- coverage by simulation --------------------------------------------------------------


@pytest.mark.slow
def test_wilson_and_newcombe_coverage_by_simulation():
    """Mean coverage over many p and n in 10..100 is within 1.5 points of 95%."""
    rng = np.random.default_rng(20240501)
    reps = 2000
    # Wilson: a grid of p, every n from 10 to 100.
    ps = np.linspace(0.02, 0.98, 25)
    ns = np.arange(10, 101, 3)
    P, N = np.meshgrid(ps, ns, indexing="ij")
    k = rng.binomial(N[..., None], P[..., None], size=(*P.shape, reps))
    ci = binomial_interval(k, N[..., None], 0.95)
    wilson_cov = ((ci.lower <= P[..., None]) & (P[..., None] <= ci.upper)).mean()
    # Newcombe: random (p_a, p_b, n_a, n_b) configurations.
    m = 400
    pa, pb = rng.uniform(0.02, 0.98, m), rng.uniform(0.02, 0.98, m)
    na, nb = rng.integers(10, 101, m), rng.integers(10, 101, m)
    ka = rng.binomial(na[:, None], pa[:, None], size=(m, reps))
    kb = rng.binomial(nb[:, None], pb[:, None], size=(m, reps))
    d = newcombe_difference(ka, na[:, None], kb, nb[:, None], 0.95)
    truth = (pa - pb)[:, None]
    newcombe_cov = ((d.lower <= truth) & (truth <= d.upper)).mean()
    assert abs(wilson_cov - 0.95) < 0.015, wilson_cov
    assert abs(newcombe_cov - 0.95) < 0.015, newcombe_cov
