"""No sentence of `compare` whose interval and test disagree; paired Newcombe by hand.

The intervals are recomputed here from statsmodels' Wilson intervals (unpaired:
statsmodels' own Newcombe interval) and the McNemar p-values from scipy's binomial
test, so the checks do not trust the code under test for either side.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from vla_eval.stats.compare import holm_levels, paired_difference, test_pair, verdict

ALPHA = 0.05


def _newcombe_paired(a, b, c, d, alpha=ALPHA):
    """Newcombe (1998, Stat. Med. 17:2635, method 10), written out from the paper."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion_confint(a + b, n, alpha, "wilson")
    l2, u2 = proportion_confint(a + c, n, alpha, "wilson")
    l1, l2 = (0.0 if a + b == 0 else l1), (0.0 if a + c == 0 else l2)
    u1, u2 = (1.0 if a + b == n else u1), (1.0 if a + c == n else u2)
    den = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    num = (cross - n / 2 if cross > n / 2 else 0.0) if cross >= 0 else cross
    phi = num / math.sqrt(den) if den else 0.0
    dd = p1 - p2
    lo = dd - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0))
    hi = dd + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0))
    return max(lo, -1.0), min(hi, 1.0)


def _mcnemar(b, c):
    return 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue


def _paired_test(a, b, c, d):
    n = a + b + c + d
    return test_pair("A", a + b, n, "B", a + c, n, discordant=(n, b, c))


def _check_sentence(text, p, lo, hi, alpha=ALPHA):
    """The sentence's kind agrees with the independently computed p and interval,
    and the printed bounds keep the sign that decides it."""
    excludes = not (lo <= 0 <= hi)
    if text.startswith("Borderline"):
        assert (p <= alpha) != excludes, text
        return "borderline"
    bounds = [float(x) for x in re.search(r"CI ([-+][\d.e+-]+) to ([-+][\d.e+-]+)", text).groups()]
    if " beats " in text:
        assert p <= alpha and excludes, text
        assert bounds[0] > 0 and bounds[1] > 0, text
        return "significant"
    assert text.startswith("No significant difference"), text
    assert p > alpha and not excludes, text
    assert bounds[0] <= 0 <= bounds[1], text
    return "not significant"


def test_paired_newcombe_matches_the_formula_written_out():
    for table in [(8, 9, 2, 1), (0, 0, 0, 5), (5, 0, 0, 0), (3, 4, 4, 3), (10, 1, 7, 2)]:
        d = paired_difference(*table)
        assert (d.lower, d.upper) == pytest.approx(_newcombe_paired(*table), abs=1e-9)


def test_paired_newcombe_coverage_is_near_nominal_by_enumeration():
    # Every paired table of n = 30 episodes, weighted by its multinomial probability.
    n = 30
    tables = [
        (a, b, c, n - a - b - c)
        for a in range(n + 1)
        for b in range(n + 1 - a)
        for c in range(n + 1 - a - b)
    ]
    bounds = np.array([(lambda x: (x.lower, x.upper))(paired_difference(*t)) for t in tables])
    counts = np.array(tables)
    log_coef = math.lgamma(n + 1) - np.vectorize(lambda x: math.lgamma(x + 1))(counts).sum(axis=1)
    for cells in [(0.5, 0.2, 0.1, 0.2), (0.7, 0.1, 0.05, 0.15), (0.3, 0.1, 0.1, 0.5)]:
        logp = log_coef + (counts * np.log(cells)).sum(axis=1)
        truth = cells[1] - cells[2]
        cover = np.exp(logp)[(bounds[:, 0] <= truth) & (truth <= bounds[:, 1])].sum()
        assert 0.925 < cover < 0.985, (cells, cover)


def test_no_unpaired_sentence_contradicts_itself_at_n_20():
    kinds = []
    for ka in range(21):
        for kb in range(21):
            t = test_pair("A", ka, 20, "B", kb, 20)
            lo, hi = confint_proportions_2indep(ka, 20, kb, 20, method="newcomb", compare="diff")
            kinds.append(_check_sentence(verdict(t, ALPHA), t.p_value, lo, hi))
    # Newcombe's interval does not invert Boschloo's test: a few tables are borderline,
    # and they are said to be.
    assert 0 < kinds.count("borderline") <= 10


@pytest.mark.slow
def test_no_paired_sentence_contradicts_itself_at_n_20():
    n = 20
    kinds = []
    for a in range(n + 1):
        for b in range(n + 1 - a):
            for c in range(n + 1 - a - b):
                t = _paired_test(a, b, c, n - a - b - c)
                p = _mcnemar(b, c)
                assert t.p_value == pytest.approx(p, rel=1e-12)
                lo, hi = _newcombe_paired(a, b, c, n - a - b - c)
                kinds.append(_check_sentence(verdict(t, ALPHA), p, lo, hi))
    assert kinds.count("significant") > 0 and kinds.count("not significant") > 0


@pytest.mark.slow
def test_no_sentence_contradicts_itself_at_n_50_random_tables():
    rng = np.random.default_rng(50)
    for _ in range(150):
        ka, kb = rng.integers(0, 51, 2)
        t = test_pair("A", int(ka), 50, "B", int(kb), 50)
        lo, hi = confint_proportions_2indep(ka, 50, kb, 50, method="newcomb", compare="diff")
        _check_sentence(verdict(t, ALPHA), t.p_value, lo, hi)
        cells = rng.multinomial(50, rng.dirichlet(np.ones(4)))
        a, b, c, d = (int(x) for x in cells)
        t = _paired_test(a, b, c, d)
        _check_sentence(verdict(t, ALPHA), _mcnemar(b, c), *_newcombe_paired(a, b, c, d))


@pytest.mark.slow
@given(st.lists(st.floats(0, 1), min_size=1, max_size=10))
@settings(max_examples=25, deadline=None)
def test_holm_levels_agree_with_holm_adjusted_p_values(p):
    levels = holm_levels(p, ALPHA)
    adjusted = multipletests(p, alpha=ALPHA, method="holm")[1]
    for raw, level, adj in zip(p, levels, adjusted, strict=True):
        assert (raw <= level) == (adj <= ALPHA * (1 + 1e-12)) or abs(adj - ALPHA) < 1e-12


def test_many_policies_sentences_agree_with_adjusted_p_and_moved_intervals(tmp_path):
    from vla_eval.episodes import Episode, write_episodes
    from vla_eval.report import build_comparison, load_policies

    rng = np.random.default_rng(7)
    paths = []
    for name, rate in [("x", 0.85), ("y", 0.55), ("z", 0.6), ("w", 0.3)]:
        eps = [
            Episode("pick", "seen", s, bool(rng.random() < rate), policy=name) for s in range(30)
        ]
        write_episodes(tmp_path / f"{name}.jsonl", eps)
        paths.append(tmp_path / f"{name}.jsonl")
    for paired in (False, True):
        res = build_comparison(load_policies(paths), paired=paired)
        levels = holm_levels([p["p_value"] for p in res["pairs"]], ALPHA)
        for row, level in zip(res["pairs"], levels, strict=True):
            d = row["difference"]
            assert d["confidence"] == pytest.approx(1 - level)
            if paired:
                a, b, c = row["successes_a"] - row["a_only"], row["a_only"], row["b_only"]
                ref = _newcombe_paired(a, b, c, 30 - a - b - c, alpha=level)
            else:
                ref = confint_proportions_2indep(
                    row["successes_a"],
                    30,
                    row["successes_b"],
                    30,
                    method="newcomb",
                    compare="diff",
                    alpha=level,
                )
            assert (d["lower"], d["upper"]) == pytest.approx(ref, abs=1e-9)
            kind = _check_sentence(row["verdict"], row["p_holm"], *ref)
            assert kind == row["decision"]


def test_binomial_helper_is_the_exact_mcnemar():
    # the oracle itself, against the formula 2 * P(Bin(n, 1/2) <= min)
    assert _mcnemar(9, 2) == pytest.approx(min(1, 2 * binom.cdf(2, 11, 0.5)))
