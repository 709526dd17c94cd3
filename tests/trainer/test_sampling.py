"""Temperature sampling, loss weights, curricula and the batch sampler."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from vla_eval.cli import main
from vla_eval.errors import UsageError
from vla_eval.stats.sampling import (
    parse_counts,
    parse_temperature,
    task_loss_weights,
    temperature_probs,
)
from vla_eval.trainer.sampling import (
    Curriculum,
    TaskBalancedSampler,
    example_loss_weights,
    sample_weights,
)

COUNTS = [50000, 30000, 2000, 500]
# RECIPE.md, section 1: the corrected table for pick / place / stack / pour.
RECIPE_TABLE = {
    0.5: [0.7344, 0.2644, 0.0012, 0.0001],
    1: [0.6061, 0.3636, 0.0242, 0.0061],
    2: [0.4820, 0.3734, 0.0964, 0.0482],
    5: [0.3538, 0.3195, 0.1859, 0.1409],
    math.inf: [0.25, 0.25, 0.25, 0.25],
}


@pytest.mark.parametrize("temperature", list(RECIPE_TABLE))
def test_recipe_table(temperature):
    p = temperature_probs(COUNTS, temperature)
    # the table's four decimals: within half a unit of the last digit (plus rounding)
    assert p.tolist() == pytest.approx(RECIPE_TABLE[temperature], abs=5.01e-5)


def test_t2_by_hand():
    # sqrt(50000) = 223.607, sqrt(30000) = 173.205, sqrt(2000) = 44.721, sqrt(500) = 22.361
    roots = np.array([223.6068, 173.2051, 44.7214, 22.3607])
    assert temperature_probs(COUNTS, 2) == pytest.approx(roots / roots.sum(), abs=1e-5)


def test_extreme_temperatures_do_not_overflow():
    p = temperature_probs([10**9, 10**6, 1], 0.01)
    assert np.all(np.isfinite(p)) and p[0] == pytest.approx(1.0)
    q = temperature_probs([10**9, 1], 1e6)
    assert q == pytest.approx([0.5, 0.5], abs=1e-4)


def test_empty_task_gets_zero():
    assert temperature_probs([10, 0, 30], math.inf).tolist() == [0.5, 0.0, 0.5]
    assert temperature_probs([10, 0, 30], 1).tolist() == pytest.approx([0.25, 0.0, 0.75])


@settings(max_examples=80, deadline=None)
@given(
    counts=st.lists(st.integers(1, 10**6), min_size=1, max_size=8),
    t=st.floats(0.1, 50),
)
def test_probabilities_properties(counts, t):
    p = temperature_probs(counts, t)
    assert p.sum() == pytest.approx(1.0)
    assert np.all(p > 0)
    # order of counts is preserved, and T > 1 is flatter than the data ratio (T = 1)
    n = np.array(counts)
    for i in range(len(n)):
        for j in range(len(n)):
            if n[i] > n[j]:
                assert p[i] >= p[j]
    data = n / n.sum()
    if t > 1:
        assert p.max() <= data.max() + 1e-12
        assert p.min() >= data.min() - 1e-12
    # the ratio of two tasks' probabilities is (n_i / n_j)^(1/T)
    assert p[0] / p[-1] == pytest.approx((n[0] / n[-1]) ** (1 / t), rel=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    counts=st.lists(st.integers(1, 200), min_size=1, max_size=6),
    t=st.one_of(st.floats(0.2, 20), st.just(math.inf)),
)
def test_sample_weights_realise_task_probabilities(counts, t):
    ids = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(0).shuffle(ids)
    w = sample_weights(ids, t)
    assert w.sum() == pytest.approx(1.0)
    mass = np.bincount(ids, weights=w)
    assert mass == pytest.approx(temperature_probs(counts, t), rel=1e-9, abs=1e-15)


def test_sample_weights_formula_by_hand():
    ids = np.array(["a", "b", "b", "b"])  # n_a = 1, n_b = 3
    # T = 2: weight n^(1/2 - 1): a 1, b 3^-0.5; normalised over 1 + 3 * 3^-0.5
    wa, wb = 1.0, 3**-0.5
    z = wa + 3 * wb
    assert sample_weights(ids, 2).tolist() == pytest.approx([wa / z, wb / z, wb / z, wb / z])
    # T = inf: 1 / n_task, normalised: a 1/2, each b 1/6
    assert sample_weights(ids, math.inf).tolist() == pytest.approx([0.5, 1 / 6, 1 / 6, 1 / 6])


def test_sample_weights_scale_to_a_million_examples():
    ids = np.repeat(np.arange(4), np.array(COUNTS) * 12)  # 1.0M examples: vectorised, fast
    w = sample_weights(ids, 2)
    assert np.bincount(ids, weights=w) == pytest.approx(RECIPE_TABLE[2], abs=5e-5)


def test_loss_weights():
    # 1/n normalised: 1/50000 : 1/30000 : 1/2000 : 1/500
    inv = 1 / np.array(COUNTS, dtype=float)
    assert task_loss_weights(COUNTS) == pytest.approx(inv / inv.sum())
    ids = np.array([0] * 6 + [1] * 2)
    # N / (K n_task): 8 / (2 * 6) and 8 / (2 * 2)
    w = example_loss_weights(ids)
    assert w.tolist() == pytest.approx([8 / 12] * 6 + [2.0] * 2)
    assert w.mean() == pytest.approx(1.0)
    assert w[ids == 0].sum() == pytest.approx(w[ids == 1].sum())


@pytest.mark.parametrize(
    "bad", [[-1, 5], [0, 0], [1.5, 2], []], ids=["negative", "all-zero", "fraction", "empty"]
)
def test_bad_counts(bad):
    with pytest.raises(UsageError):
        temperature_probs(bad, 1)


@pytest.mark.parametrize("bad", ["0", "-2", "nan", "abc", ""])
def test_bad_temperature(bad):
    with pytest.raises(UsageError):
        parse_temperature(bad)


def test_parse_counts():
    assert parse_counts("pick=3, place=0") == {"pick": 3, "place": 0}
    for bad in ["pick", "pick=", "=3", "pick=x", "pick=1,pick=2", "pick=-4", ""]:
        with pytest.raises(UsageError):
            parse_counts(bad)


# --- curriculum ------------------------------------------------------------------------


def test_recipe_curriculum():
    c = Curriculum.recipe_default()
    assert c.active(0.0) == ("pick", "place")
    assert c.active(0.33) == ("pick", "place")
    assert c.active(1 / 3) == ("pick", "place", "stack")
    assert c.active(0.7) == ("pick", "place", "stack", "pour")
    assert c.active(1.0) == ("pick", "place", "stack", "pour")
    assert c.mask(0.5, ["pour", "stack", "pick", "place"]).tolist() == [False, True, True, True]


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0, 1), b=st.floats(0, 1))
def test_curriculum_sets_only_grow(a, b):
    c = Curriculum.recipe_default()
    early, late = sorted([a, b])
    assert set(c.active(early)) <= set(c.active(late))


def test_bad_curricula():
    with pytest.raises(UsageError):
        Curriculum((0.2,), (("pick",),))  # must start at 0
    with pytest.raises(UsageError):
        Curriculum((0.0, 0.5, 0.4), (("a",), ("b",), ("c",)))
    with pytest.raises(UsageError):
        Curriculum((0.0, 0.5), (("a",), ("a",)))
    with pytest.raises(UsageError, match="not in the data"):
        Curriculum.recipe_default().mask(0.5, ["pick", "place", "stak", "pour"])


# --- sampler ------------------------------------------------------------------------------


def _ids():
    return np.array(["pick"] * 500 + ["place"] * 300 + ["stack"] * 20 + ["pour"] * 5)


@pytest.mark.parametrize("stratified", [False, True])
def test_sampler_frequencies_match_temperature(stratified):
    ids = _ids()
    sampler = TaskBalancedSampler(ids, temperature=2, stratified=stratified)
    rng = np.random.default_rng(0)
    draws = np.concatenate([sampler.sample(64, rng) for _ in range(300)])
    tasks = ["pick", "place", "stack", "pour"]
    observed = np.array([(ids[draws] == t).sum() for t in tasks])
    expected = temperature_probs([500, 300, 20, 5], 2) * draws.size
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # within a task, examples are drawn uniformly
    pour = draws[ids[draws] == "pour"]
    within = np.bincount(pour - 820, minlength=5)
    assert stats.chisquare(within).pvalue > 1e-3


def test_stratified_batches_hold_floor_or_ceil():
    ids = _ids()
    sampler = TaskBalancedSampler(ids, temperature=math.inf, stratified=True)
    rng = np.random.default_rng(1)
    for _ in range(20):
        batch = ids[sampler.sample(10, rng)]
        counts = [int((batch == t).sum()) for t in ("pick", "place", "stack", "pour")]
        assert all(c in (2, 3) for c in counts) and sum(counts) == 10


def test_sampler_follows_curriculum():
    ids = _ids()
    sampler = TaskBalancedSampler(ids, temperature=math.inf, curriculum=Curriculum.recipe_default())
    rng = np.random.default_rng(2)
    early = set(ids[sampler.sample(500, rng, progress=0.1)])
    assert early == {"pick", "place"}
    late = set(ids[sampler.sample(500, rng, progress=0.9)])
    assert late == {"pick", "place", "stack", "pour"}


def test_sampler_is_reproducible_with_either_generator():
    ids = _ids()
    s = TaskBalancedSampler(ids, temperature=2)
    a = s.sample(32, np.random.default_rng(5))
    b = s.sample(32, np.random.default_rng(5))
    assert np.array_equal(a, b)
    c = s.sample(32, torch.Generator().manual_seed(5))
    d = s.sample(32, torch.Generator().manual_seed(5))
    assert np.array_equal(c, d) and c.dtype == np.int64
    with pytest.raises(UsageError, match="Generator"):
        s.sample(4, 5)
    with pytest.raises(UsageError):
        s.sample(0, np.random.default_rng(0))


# --- command line ----------------------------------------------------------------------


def test_cli_table(capsys):
    assert (
        main(
            [
                "sampling",
                "--counts",
                "pick=50000,place=30000,stack=2000,pour=500",
                "--temperature",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for value in ("0.4820", "0.3734", "0.0964", "0.0482"):
        assert value in out


def test_cli_json_with_inf(capsys):
    argv = [
        "sampling",
        "--counts",
        "pick=50000,place=30000,stack=2000,pour=500",
        "-T",
        "inf,2",
        "--json",
    ]
    assert main(argv) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["schema"] == "vla-eval/sampling/1"
    assert body["temperatures"][0]["temperature"] == "inf"
    assert list(body["temperatures"][0]["probabilities"].values()) == [0.25] * 4
    got = list(body["temperatures"][1]["probabilities"].values())
    assert got == pytest.approx(RECIPE_TABLE[2], abs=5.01e-5)
    assert "provenance" in body


@pytest.mark.parametrize(
    "argv",
    [
        ["--counts", "pick=-5,place=3", "-T", "2"],
        ["--counts", "pick=5", "-T", "0"],
        ["--counts", "pick=5", "-T", "-1"],
        ["--counts", "pick5", "-T", "2"],
        ["--counts", "pick=5", "-T", "hot"],
    ],
)
def test_cli_bad_input(argv, capsys):
    assert main(["sampling", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "error" in captured.err
