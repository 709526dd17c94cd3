"""Sample-size planning: trials to detect p0 -> p1, for a half-width, and the MDD."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize

from vla_eval.cli import main
from vla_eval.errors import UsageError
from vla_eval.stats.planning import (
    minimum_detectable_difference,
    power_of,
    trials_for_half_width,
    trials_to_detect,
    wilson_half_width,
)


def _fleiss_by_hand(p0, p1, alpha, power):
    za, zb = norm.ppf(1 - alpha / 2), norm.ppf(power)
    pbar = (p0 + p1) / 2
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
    return num**2 / (p1 - p0) ** 2


def test_known_value_05_to_07_needs_93_per_arm():
    assert trials_to_detect(0.5, 0.7, alpha=0.05, power=0.8) == 93
    # 92.9988 before rounding up: the pooled-variance formula, no continuity correction.
    assert _fleiss_by_hand(0.5, 0.7, 0.05, 0.8) == pytest.approx(92.9988, abs=1e-4)


def test_arcsine_method_agrees_with_statsmodels_normal_ind_power():
    h = proportion_effectsize(0.7, 0.5)
    n = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1.0)
    assert trials_to_detect(0.5, 0.7, method="arcsine") == math.ceil(n) == 93


@given(
    st.floats(0.02, 0.98),
    st.floats(0.02, 0.98),
    st.sampled_from([0.01, 0.05, 0.1]),
    st.sampled_from([0.7, 0.8, 0.9]),
)
@settings(max_examples=200, deadline=None)
@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::Warning")
def test_trials_to_detect_matches_formula_and_statsmodels(p0, p1, alpha, power):
    if abs(p1 - p0) < 0.02:
        return
    n = trials_to_detect(p0, p1, alpha, power)
    assert n == max(1, math.ceil(_fleiss_by_hand(p0, p1, alpha, power) - 1e-9))
    h = proportion_effectsize(p1, p0)
    ref = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=1.0)
    if not (math.isfinite(ref) and ref >= 5):
        return  # statsmodels' root finder does not converge for such huge effects
    # statsmodels also counts the (tiny) power of the opposite tail, so its n can be a
    # fraction smaller than the closed form's; never by a whole trial.
    n_arcsine = trials_to_detect(p0, p1, alpha, power, method="arcsine")
    assert math.ceil(ref) <= n_arcsine <= math.ceil(ref) + 1
    assert n_arcsine == math.ceil(2 * ((norm.ppf(1 - alpha / 2) + norm.ppf(power)) / h) ** 2)
    # The two approximations agree closely for moderate rates and effects.
    if 0.2 <= min(p0, p1) and max(p0, p1) <= 0.8 and abs(p1 - p0) <= 0.3:
        assert n == pytest.approx(ref, rel=0.1, abs=2)


def test_power_of_inverts_trials_to_detect():
    assert power_of(0.5, 0.7, 93) == pytest.approx(0.8, abs=1e-4)
    assert power_of(0.5, 0.7, 92) < 0.8 < power_of(0.5, 0.7, 94)
    h = proportion_effectsize(0.7, 0.5)
    ref = NormalIndPower().power(effect_size=h, nobs1=60, alpha=0.05, ratio=1.0)
    assert power_of(0.5, 0.7, 60, method="arcsine") == pytest.approx(ref, abs=1e-3)


@given(st.floats(0.01, 0.3), st.floats(0.0, 1.0), st.sampled_from([0.9, 0.95, 0.99]))
@settings(max_examples=80, deadline=None)
def test_half_width_plan_is_the_smallest_n(h, p, confidence):
    n = trials_for_half_width(h, p, confidence)
    assert wilson_half_width(p, n, confidence) <= h
    if n > 1:
        assert wilson_half_width(p, n - 1, confidence) > h


def test_half_width_known_value_and_statsmodels_wilson():
    assert trials_for_half_width(0.1, 0.5) == 93
    # At k = n p exactly, the half-width is statsmodels' Wilson interval's.
    lo, hi = proportion_confint(50, 100, alpha=0.05, method="wilson")
    assert wilson_half_width(0.5, 100) == pytest.approx((hi - lo) / 2, abs=1e-12)


def test_minimum_detectable_difference_inverts_trials_to_detect():
    mdd = minimum_detectable_difference(93, p0=0.5)
    assert mdd.increase == pytest.approx(0.2, abs=1e-3)
    assert mdd.decrease == pytest.approx(0.2, abs=1e-3)
    for n, p0 in ((30, 0.3), (200, 0.8), (50, 0.5)):
        m = minimum_detectable_difference(n, p0)
        if m.increase is not None:
            assert _fleiss_by_hand(p0, p0 + m.increase, 0.05, 0.8) == pytest.approx(n, rel=1e-6)
        if m.decrease is not None:
            assert _fleiss_by_hand(p0, p0 - m.decrease, 0.05, 0.8) == pytest.approx(n, rel=1e-6)


def test_minimum_detectable_difference_none_when_impossible():
    m = minimum_detectable_difference(10, p0=0.9)
    assert m.increase is None and m.decrease is not None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: trials_to_detect(0.5, 0.5), "equal"),
        (lambda: trials_to_detect(0.5, 1.2), "p1"),
        (lambda: trials_to_detect(0.5, 0.7, alpha=0), "alpha"),
        (lambda: trials_to_detect(0.5, 0.7, power=1.0), "power"),
        (lambda: trials_to_detect(0.5, 0.7, method="magic"), "method"),
        (lambda: trials_to_detect(float("nan"), 0.7), "p0"),
        (lambda: trials_for_half_width(0), "half-width"),
        (lambda: trials_for_half_width(0.6), "half-width"),
        (lambda: minimum_detectable_difference(0), "trials"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(UsageError, match=message):
        call()


# --- the `vla-eval plan` command line --------------------------------------------------


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_cli_plan(capsys):
    # Default: the exact power of Boschloo's test, which compare uses for unpaired data.
    assert main(["plan", "--p0", "0.5", "--p1", "0.7", "--test", "z", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["test"] == "z" and data["formula"]["trials_per_policy"] == 93
    assert data["exact_power"] >= 0.8
    assert main(["plan", "--p0", "0.5", "--p1", "0.7", "--discordance", "0.3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["test"] == "mcnemar" and data["trials_per_policy"] < 93
    assert main(["plan", "--half-width", "0.1", "--p", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "vla-eval/plan/2" and data["trials"] == 93
    assert main(["plan", "--half-width", "0.05", "--p", "0.8", "--assurance", "0.8"]) == 0
    assert capsys.readouterr().out.startswith("263 trials")
    assert main(["plan", "--trials", "93", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["increase"] == pytest.approx(0.2, abs=1e-3)
    assert main(["plan", "--trials", "10", "--p0", "0.9"]) == 0
    assert "none possible" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["plan"],
        ["plan", "--p0", "0.5"],
        ["plan", "--p0", "0.5", "--p1", "0.5"],
        ["plan", "--p0", "0.5", "--p1", "nan"],
        ["plan", "--p0", "x", "--p1", "0.7"],
        ["plan", "--half-width", "0.1", "--trials", "5"],
        ["plan", "--trials", "0"],
        ["plan", "--p0", "0.5", "--p1", "0.7", "--test", "mcnemar"],
        ["plan", "--p0", "0.5", "--p1", "0.7", "--discordance", "0.1"],
        ["plan", "--p0", "0.5", "--p1", "0.7", "--test", "exactish"],
        ["plan", "--half-width", "0.1", "--assurance", "1.5"],
    ],
)
def test_cli_plan_bad_input(capsys, argv):
    _error(capsys, argv)
