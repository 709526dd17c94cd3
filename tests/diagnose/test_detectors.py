"""Each detector on hand-made signal sequences: when it fires, and only once per episode."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.diagnose.detectors import (
    ActionJitter,
    CatastrophicForgetting,
    GradientExplosion,
    Latch,
    ModeCollapse,
    Overfitting,
    Signals,
    TaskImbalance,
    default_detectors,
    dispersion_ratio,
    roughness,
    temperature_probabilities,
    top_bin_share,
)
from vla_eval.errors import UsageError


def fire_steps(detector, records):
    return [(f.step, f.severity) for s in records if (f := detector.update(s)) is not None]


# --- the latch ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.booleans(), max_size=80),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=5),
)
def test_latch_fires_once_per_episode(trips, patience, rearm):
    latch = Latch(patience, rearm)
    fired = [latch.update(t) for t in trips]
    # reference: walk the sequence by the definition
    expected, active, run, clear = [], False, 0, 0
    for t in trips:
        if t:
            run, clear = run + 1, 0
            start = not active and run >= patience
            active = active or start
            expected.append(start)
        else:
            run = 0
            if active:
                clear += 1
                if clear >= rearm:
                    active, clear = False, 0
            expected.append(False)
    assert fired == expected
    for i, f in enumerate(fired):
        if f:  # fires only on a tripped observation, after `patience` in a row
            assert all(trips[i - patience + 1 : i + 1])


# --- gradient explosion ------------------------------------------------------------


def test_grad_spike_fires_on_its_step_once_and_rearms():
    rng = np.random.default_rng(0)
    grads = list(1.0 + 0.1 * rng.random(200))
    grads[30:36] = [50.0] * 6  # one episode of six spiking steps
    grads[120] = 200.0  # a second episode, long after the first cleared
    records = [Signals(i, loss=1.0, grad_norm=g, lr=1e-3) for i, g in enumerate(grads)]
    det = GradientExplosion()
    fired = fire_steps(det, records)
    assert fired == [(30, "warning"), (120, "warning")]


def test_grad_spike_message_quotes_the_numbers():
    det = GradientExplosion()
    for i in range(25):
        det.update(Signals(i, grad_norm=34.0, loss=1.0, lr=1e-3))
    f = det.update(Signals(812, grad_norm=3.1e4, loss=1.0, lr=1e-3))
    assert "grad norm 3.1e4 at step 812, 912x its running median 34" in f.message
    assert f.fix == "clip the gradient norm at 1.0 and halve the LR (0.001 -> 5.0e-4)."
    assert f.evidence["ratio"] == pytest.approx(3.1e4 / 34)


def test_nan_is_critical_even_during_a_spike_episode():
    det = GradientExplosion()
    records = [Signals(i, loss=1.0, grad_norm=1.0) for i in range(30)]
    records += [Signals(30, loss=1.0, grad_norm=500.0)]
    records += [Signals(31, loss=math.nan, grad_norm=math.inf, nonfinite_param="head.weight")]
    records += [Signals(i, loss=math.nan, grad_norm=math.nan) for i in range(32, 40)]
    fired = fire_steps(det, records)
    assert fired == [(30, "warning"), (31, "critical")]
    det2 = GradientExplosion()
    f = [det2.update(s) for s in records][31]
    assert "first non-finite gradient in parameter 'head.weight'" in f.message


def test_converged_gradients_wobbling_are_not_an_explosion():
    det = GradientExplosion()
    grads = [1.0] * 20 + [1e-6] * 100 + [5e-5]  # 50x the recent median, tiny in absolute terms
    assert fire_steps(det, [Signals(i, grad_norm=g) for i, g in enumerate(grads)]) == []


def test_loss_divergence_is_flagged():
    det = GradientExplosion()
    losses = [1.0 / (1 + 0.01 * i) for i in range(50)] + [30.0]
    assert fire_steps(det, [Signals(i, loss=v) for i, v in enumerate(losses)]) == [(50, "warning")]


def test_no_signals_no_finding():
    det = GradientExplosion()
    assert fire_steps(det, [Signals(i) for i in range(100)]) == []


# --- mode collapse -----------------------------------------------------------------


def test_dispersion_ratio_against_numpy():
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(32, 4, 3)), rng.normal(scale=3.0, size=(32, 4, 3))
    target[:, :, 2] = 1.5  # a constant dimension is left out
    ratio, p, t = dispersion_ratio(pred, target)
    keep = np.ones((4, 3), bool)
    keep[:, 2] = False
    assert p == pytest.approx(pred.std(axis=0)[keep].mean())
    assert t == pytest.approx(target.std(axis=0)[keep].mean())
    assert ratio == pytest.approx(p / t)


def test_top_bin_share_by_hand():
    tokens = np.array([[3, 0], [3, 0], [3, 1], [2, 0]])
    assert top_bin_share(tokens) == pytest.approx((3 / 4 + 3 / 4) / 2)


def collapse_records(start, n, collapsed):
    rng = np.random.default_rng(2)
    out = []
    for step in range(start, start + 10 * n, 10):
        target = rng.normal(size=(16, 4, 7))
        pred = 0.001 * rng.normal(size=target.shape) if collapsed(step) else target + 0.1
        out.append(Signals(step, pred_actions=pred, target_actions=target, lr=1e-4))
    return out


def test_mode_collapse_fires_after_warmup_and_patience():
    det = ModeCollapse()
    records = collapse_records(0, 40, collapsed=lambda s: True)
    found = [f for s in records if (f := det.update(s)) is not None]
    # checks at 200, 210, 220: warm-up 200, patience 3
    assert [(f.step, f.severity) for f in found] == [(220, "warning")]
    assert "cut the LR 10x (1.0e-4 -> 1.0e-5)" in found[0].fix


def test_mode_collapse_rearms_after_recovery():
    det = ModeCollapse(warmup_steps=0, patience=1, rearm_after=3)
    records = collapse_records(0, 20, collapsed=lambda s: s < 50 or s >= 120)
    assert fire_steps(det, records) == [(0, "warning"), (120, "warning")]


def test_one_bin_taking_the_batch_is_collapse():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 256, size=(64, 7))
    pred = np.full_like(target, 128)
    pred[:4] = target[:4]  # 60 of 64 predictions in one bin
    det = ModeCollapse(warmup_steps=0, patience=1, ratio_threshold=0.0)
    f = det.update(Signals(5, pred_actions=pred, target_actions=target))
    assert f.evidence["pred_top_bin_share"] >= 60 / 64
    assert "one action bin takes" in f.message


# --- action jitter -----------------------------------------------------------------


def test_roughness_by_hand():
    # one sequence, one dim: 0, 2, 1, 3, 3.01  (scale 1)
    a = np.array([[[0.0], [2.0], [1.0], [3.0], [3.01]]])
    # steps: +2, -1, +2, +0.01 -> significant pairs (|d| > 0.05): (+2,-1), (-1,+2): 2 flips / 2
    # second differences: -3, +3, -1.99 -> mean |.| = 7.99 / 3
    scr, jerk = roughness(a, np.array([1.0]))
    assert scr == 1.0
    assert jerk == pytest.approx(7.99 / 3)


def smooth_chunks(rng, n=32, h=8, d=7):
    t = np.arange(h)[None, :, None]
    return rng.normal(size=(n, 1, d)) + rng.normal(size=(n, 1, d)) * 0.1 * t


def test_jittery_predictions_of_smooth_targets():
    rng = np.random.default_rng(4)
    target = smooth_chunks(rng)
    pred = target + 0.5 * (-1.0) ** np.arange(8)[None, :, None]
    det = ActionJitter(warmup_steps=0, patience=1)
    f = det.update(Signals(300, pred_actions=pred, target_actions=target))
    assert f is not None and f.symptom == "action_jitter"
    assert "x the targets' jerk" in f.message
    assert "chunk 8 -> 16" in f.fix
    assert (
        ActionJitter(warmup_steps=0, patience=1).update(
            Signals(300, pred_actions=target + 0.01, target_actions=target)
        )
        is None
    )


def test_jitter_waits_for_warmup_and_needs_chunks():
    rng = np.random.default_rng(5)
    target = smooth_chunks(rng)
    pred = target + 0.5 * (-1.0) ** np.arange(8)[None, :, None]
    det = ActionJitter()
    assert det.update(Signals(10, pred_actions=pred, target_actions=target)) is None
    assert det.update(Signals(500, pred_actions=pred[:, :2], target_actions=target[:, :2])) is None


def test_white_noise_rollouts_jitter_and_smooth_ones_do_not():
    rng = np.random.default_rng(6)
    t = np.linspace(0, 1, 50)[:, None]
    smooth = [np.hstack([np.sin(3 * t + p), np.cos(2 * t + p)]) for p in rng.random(5)]
    noisy = [rng.normal(size=(50, 2)) for _ in range(5)]
    assert ActionJitter().update(Signals(None, rollout_actions=smooth)) is None
    f = ActionJitter().update(Signals(None, rollout_actions=noisy))
    assert f.evidence["jittery_rollouts"] == 5
    # white noise reverses direction about 2/3 of the time
    assert f.evidence["sign_change_rate"] == pytest.approx(2 / 3, abs=0.08)


# --- overfitting -------------------------------------------------------------------


def eval_sequence(heldout, train):
    records = []
    for i, (h, t) in enumerate(zip(heldout, train, strict=True)):
        step = 100 * (i + 1)
        records += [Signals(step - k, loss=t) for k in range(3, 0, -1)]
        records.append(Signals(step, heldout_loss=h))
    return records


def test_overfitting_fires_after_two_rising_evals():
    heldout = [1.0, 0.8, 0.7, 0.75, 0.8, 0.85, 0.9]
    train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2]
    det = Overfitting()
    fired = fire_steps(det, eval_sequence(heldout, train))
    # best 0.7 (step 300); +10% is 0.77: 0.8 at step 500 trips, 0.85 at 600 fires
    assert fired == [(600, "warning")]
    det = Overfitting()
    f = [det.update(s) for s in eval_sequence(heldout, train)][-5]
    assert f.evidence["best_step"] == 300 and f.evidence["train_loss_at_best"] == 0.6
    assert "keep the step-300 checkpoint" in f.fix


def test_both_losses_rising_is_not_overfitting():
    heldout = [1.0, 0.8, 0.9, 1.0, 1.2, 1.5]
    train = [1.0, 0.8, 0.9, 1.0, 1.2, 1.5]
    assert fire_steps(Overfitting(), eval_sequence(heldout, train)) == []


# --- forgetting --------------------------------------------------------------------


def test_forgetting_from_best_web_loss():
    losses = [2.0, 1.8, 1.9, 2.2, 2.3, 2.4]
    records = [Signals(100 * i, web_loss=v) for i, v in enumerate(losses)]
    # best 1.8; +20% is 2.16: 2.2 (step 300) trips, 2.3 (step 400) fires
    assert fire_steps(CatastrophicForgetting(), records) == [(400, "warning")]


def test_forgetting_of_accuracy_against_a_given_baseline():
    det = CatastrophicForgetting(baseline_accuracy=0.62, patience=1)
    acc = [0.61, 0.6, 0.56, 0.5]
    fired = fire_steps(det, [Signals(10 * i, web_accuracy=a) for i, a in enumerate(acc)])
    assert fired == [(20, "warning")]  # 0.56 <= 0.62 - 0.05


# --- task imbalance ----------------------------------------------------------------


def test_temperature_probabilities_match_the_recipe_table():
    counts = {"pick": 50000, "place": 30000, "stack": 2000, "pour": 500}
    table = {  # RECIPE.md, corrected values
        0.5: (0.7344, 0.2644, 0.0012, 0.0001),
        1: (0.6061, 0.3636, 0.0242, 0.0061),
        2: (0.4820, 0.3734, 0.0964, 0.0482),
        5: (0.3538, 0.3195, 0.1859, 0.1409),
        math.inf: (0.25, 0.25, 0.25, 0.25),
    }
    for temp, expected in table.items():
        p = temperature_probabilities(counts, temp)
        assert list(p.values()) == pytest.approx(expected, abs=6e-5)


def imbalance_records(rare_error, steps=200, rng_seed=7):
    rng = np.random.default_rng(rng_seed)
    out = []
    for step in range(steps):
        errs = {}
        for task, n, mean in (("pick", 40, 0.1), ("place", 22, 0.1), ("pour", 2, rare_error)):
            e = rng.exponential(mean, size=n)
            errs[task] = (float(n), float(e.sum()), float((e * e).sum()))
        out.append(Signals(step, task_errors=errs))
    return out


def test_rare_task_lagging_is_imbalance():
    det = TaskImbalance()
    fired = [f for s in imbalance_records(0.6) if (f := det.update(s)) is not None]
    assert len(fired) == 1
    f = fired[0]
    assert f.evidence["task"] == "pour" and f.evidence["ratio"] > 4
    assert f.step < 40
    assert "T=2" in f.fix


def test_rare_task_doing_fine_is_not_imbalance():
    det = TaskImbalance()
    assert [s for s in imbalance_records(0.1) if det.update(s) is not None] == []


# --- the set -----------------------------------------------------------------------


def test_thresholds_can_be_set_and_typos_are_refused():
    dets = default_detectors({"overfitting": {"rise": 0.25}})
    over = next(d for d in dets if d.symptom == "overfitting")
    assert over.rise == 0.25 and over.thresholds()["rise"] == 0.25
    with pytest.raises(UsageError, match="unknown threshold"):
        default_detectors({"overfitting": {"rize": 0.25}})
    with pytest.raises(UsageError, match="unknown symptom"):
        default_detectors({"overfit": {}})
