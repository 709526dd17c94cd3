"""The one spike definition: a value above a factor times the running median before it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.diagnose.detectors import GradientExplosion, Signals
from vla_eval.diagnose.spikes import RunningMedian, count_spikes, is_spike


def test_is_spike_by_hand():
    assert is_spike(3.1, 1.0, 3.0) and not is_spike(3.0, 1.0, 3.0)  # strictly above
    assert not is_spike(5.0, None, 3.0)  # no history yet
    assert not is_spike(5.0, math.nan, 3.0) and not is_spike(5.0, math.inf, 3.0)
    assert not is_spike(5.0, 0.0, 3.0) and not is_spike(5.0, -1.0, 3.0)  # no multiple
    assert is_spike(5e-12, 0.0, 3.0, floor=1e-12)  # a floored median can be exceeded


def test_running_median_keeps_a_window_and_the_first_values():
    history = RunningMedian(window=4, keep_first=3)
    assert history.median() is None and len(history) == 0
    for x in (5.0, 1.0, 3.0, 100.0, 7.0, 8.0):
        history.add(x)
    assert len(history) == 4
    assert history.median() == np.median([3.0, 100.0, 7.0, 8.0])
    assert history.first_median() == 3.0  # median of 5, 1, 3


def loop_count(loss: np.ndarray, window: int, factor: float) -> int:
    """The stability summary's spike count written out as a loop over numpy slices."""
    spikes = 0
    for i in range(1, len(loss)):
        ref = np.median(loss[max(0, i - window) : i])
        if not np.isfinite(loss[i]) or (np.isfinite(ref) and ref > 0 and loss[i] > factor * ref):
            spikes += 1
    return spikes


def test_count_spikes_by_hand():
    # step 3 (5.0 > 3 x median 1.0) and the NaN at step 5; step 0 is never judged
    assert count_spikes([1.0, 1.1, 0.9, 5.0, 1.0, math.nan, 1.0]) == 2
    assert count_spikes([math.inf, 1.0]) == 0  # the first step has no history
    assert count_spikes([1.0, 1.0, 2.9, 3.1], window=2, factor=2.0) == 1  # 3.1 > 2 x 1.45


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(0.01, 100.0), st.sampled_from([math.nan, math.inf, 0.05, 40.0])),
        max_size=120,
    ),
    st.integers(1, 60),
    st.floats(1.5, 5.0),
)
def test_count_spikes_matches_the_written_out_loop(values, window, factor):
    assert count_spikes(values, window, factor) == loop_count(np.array(values), window, factor)


@pytest.mark.parametrize("factor", [20.0, 100.0])
def test_the_detector_judges_grad_norms_by_the_same_rule(factor):
    """A jump just above / below the factor times the healthy median fires / stays quiet."""
    for above, fires in ((1.01, True), (0.99, False)):
        detector = GradientExplosion(single_spike_factor=factor)
        for step in range(30):
            detector.update(Signals(step, loss=1.0, grad_norm=1.0 + 0.01 * (step % 3)))
        median = float(np.median([1.0 + 0.01 * (s % 3) for s in range(30)]))
        found = detector.update(Signals(30, loss=1.0, grad_norm=above * factor * median))
        assert (found is not None) is fires
