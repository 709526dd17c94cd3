"""Stopping rules: parsing, the half-width rule against an independent interval, error rates.

The half-width rule is checked against the confidence sequence computed here from its
definition (the p whose Beta(1/2, 1/2) mixture likelihood ratio stays below 1/alpha,
on a fine grid with scipy's betaln); the error rates come from simulations driven by
numpy generators with fixed seeds, scored against the true rates set in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import betaln
from scipy.stats import binomtest

from vla_eval.errors import UsageError
from vla_eval.stats.stopping import Stopper, StopRule, parse_rule


def grid_sequence(s: int, t: int, alpha: float = 0.05) -> tuple[float, float]:
    """The mixture confidence sequence by brute force on a grid of p."""
    p = np.linspace(1e-6, 1 - 1e-6, 200_001)
    log_ratio = betaln(0.5 + s, 0.5 + t - s) - betaln(0.5, 0.5)
    log_ratio = log_ratio - (s * np.log(p) + (t - s) * np.log1p(-p))
    inside = p[log_ratio < np.log(1 / alpha)]
    lower = 0.0 if s == 0 else inside.min()
    upper = 1.0 if s == t else inside.max()
    return float(lower), float(upper)


@pytest.mark.parametrize(
    ("text", "kind", "threshold"),
    [
        ("half-width<=0.05", "half-width", 0.05),
        (" half-width <= .2 ", "half-width", 0.2),
        ("half-width<=1e-2", "half-width", 0.01),
        ("decided", "decided", None),
    ],
)
def test_parse_rule(text: str, kind: str, threshold: float | None) -> None:
    rule = parse_rule(text)
    assert (rule.kind, rule.threshold) == (kind, threshold)
    assert parse_rule(rule.text) == rule


@pytest.mark.parametrize(
    "text",
    [
        "",
        "half-width<0.05",
        "halfwidth<=0.05",
        "half-width<=0",
        "half-width<=0.5",
        "half-width<=-0.1",
        "half-width<=nan",
        "decided!",
        "width<=5%",
    ],
)
def test_parse_rule_refuses_bad_text(text: str) -> None:
    with pytest.raises(UsageError, match="--stop-when"):
        parse_rule(text)


def test_decided_needs_a_baseline() -> None:
    with pytest.raises(UsageError, match="--baseline"):
        Stopper(parse_rule("decided"))


@settings(max_examples=40, deadline=None)
@given(
    outcomes=st.lists(st.booleans(), min_size=1, max_size=60),
    round_size=st.integers(1, 6),
    h=st.sampled_from([0.1, 0.2, 0.3, 0.45]),
)
def test_half_width_rule_stops_exactly_when_the_sequence_is_narrow_enough(
    outcomes: list[bool], round_size: int, h: float
) -> None:
    stopper = Stopper(StopRule("half-width", h), round_size)
    for i, success in enumerate(outcomes, start=1):
        stop = stopper.observe([(("t", "s", i), success)])
        counted = i - i % round_size  # only complete rounds count
        if counted == 0:
            assert not stop
            continue
        lower, upper = grid_sequence(sum(outcomes[:counted]), counted)
        width = (upper - lower) / 2
        if abs(width - h) > 1e-4:  # the grid's resolution
            assert stop == (width <= h), (i, width)
        d = stopper.decision()
        assert d.episodes == counted and d.seen == i
        assert d.interval is not None
        assert d.interval.lower == pytest.approx(lower, abs=2e-5)
        assert d.interval.upper == pytest.approx(upper, abs=2e-5)


def simulate_half_width(rates: np.ndarray, h: float, rounds: int, sims: int, seed: int):
    """Round-robin rollouts over tasks with `rates`, stopped by half-width<=h."""
    rng = np.random.default_rng(seed)
    t = len(rates)
    covered, used = 0, []
    for _ in range(sims):
        x = rng.random((rounds, t)) < rates
        stopper = Stopper(StopRule("half-width", h), t)
        for r in range(0, rounds, 2):  # batches of two rounds
            batch = [((str(j), "s", i), bool(x[i, j])) for i in (r, r + 1) for j in range(t)]
            if stopper.observe(batch):
                break
        d = stopper.decision()
        assert d.interval is not None
        if d.stop:
            assert d.interval.half_width <= h
        covered += d.interval.lower <= rates.mean() <= d.interval.upper
        used.append(d.episodes)
    return covered / sims, float(np.mean(used))


@pytest.mark.parametrize(
    "rates", [np.array([0.5]), np.array([0.2, 0.9, 0.6, 0.95]), np.array([0.05, 0.1, 0.98])]
)
def test_half_width_stopping_keeps_coverage(rates: np.ndarray) -> None:
    coverage, used = simulate_half_width(rates, 0.15, 200, 400, seed=7)
    assert coverage >= 0.95
    assert used < 200 * len(rates)  # it did stop early


def simulate_decided(p_base: float, p_new: float, sims: int, seed: int):
    """8 (task, split) x 25 seeds against a baseline; checked after every round of 8."""
    rng = np.random.default_rng(seed)
    tasks, seeds = 8, 25
    decided, used, fixed = 0, [], 0
    for _ in range(sims):
        base = rng.random((seeds, tasks)) < p_base
        new = rng.random((seeds, tasks)) < p_new
        baseline = {(str(j), "s", i): bool(base[i, j]) for i in range(seeds) for j in range(tasks)}
        stopper = Stopper(parse_rule("decided"), tasks, baseline=baseline)
        n = seeds * tasks
        for i in range(seeds):
            if stopper.observe(((str(j), "s", i), bool(new[i, j])) for j in range(tasks)):
                n = (i + 1) * tasks
                break
        decided += stopper.decision().stop
        used.append(n)
        # The fixed-n comparison: McNemar's exact test on all 200 pairs.
        b, c = int((new & ~base).sum()), int((base & ~new).sum())
        fixed += b + c > 0 and binomtest(b, b + c).pvalue <= 0.05
    return decided / sims, float(np.mean(used)), fixed / sims


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_decided_type_one_error(rate: float) -> None:
    decided, used, _ = simulate_decided(rate, rate, 1000, seed=11)
    assert decided <= 0.05
    assert used > 190  # with equal rates it almost never stops


def test_decided_saves_trials_when_there_is_a_difference() -> None:
    # The numbers quoted in docs/statistics.md (4,000 runs each there; 1,000 here).
    decided, used, fixed = simulate_decided(0.5, 0.8, 1000, seed=12)
    assert decided >= 0.99 and fixed >= 0.99
    assert 45 <= used <= 62  # docs: 54 of 200 episodes
    decided, used, fixed = simulate_decided(0.5, 0.7, 1000, seed=13)
    assert 0.79 <= decided <= 0.88 and fixed >= 0.96  # docs: 83%, fixed-n 98%
    assert 105 <= used <= 128  # docs: 117


def test_decided_reports_the_comparison() -> None:
    baseline = {("t", "s", i): False for i in range(12)}
    stopper = Stopper(parse_rule("decided"), 1, baseline=baseline, name="new", baseline_name="old")
    stops = [stopper.observe([(("t", "s", i), True)]) for i in range(12)]
    # Hand calculation: after k wins and no losses the e-value is
    # B(1/2 + k, 1/2) / B(1/2, 1/2) * 2^k; it first reaches 20 at k = 7.
    e = [np.exp(betaln(0.5 + k, 0.5) - betaln(0.5, 0.5) + k * np.log(2)) for k in range(1, 13)]
    first = next(k for k, v in enumerate(e, start=1) if v >= 20)
    assert first == stops.index(True) + 1
    d = stopper.decision()
    assert d.comparison is not None and d.comparison.better == "new"
    assert "new is better" in d.describe() and "e-value" in d.describe()
