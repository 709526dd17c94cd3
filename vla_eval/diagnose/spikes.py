"""Loss and gradient-norm spikes: the one definition, shared by live and offline code.

A value is a *spike* when it exceeds ``factor`` times the running median of the values
before it (`is_spike`); a median that is missing, not finite or not above zero has no
multiple to exceed, so nothing is a spike against it. The gradient-explosion detector
judges every step this way against a `RunningMedian` of its recent *healthy* steps (so
a lasting explosion never becomes the new normal), and adds its own gates on top; the
training-stability summary of an experiment counts spikes of a logged loss series with
`count_spikes`, against the median of all the steps before each one. Standard library
and numpy only: it must not import torch or anything else of the toolkit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np


def is_spike(value: float, median: float | None, factor: float, floor: float = 0.0) -> bool:
    """Whether ``value`` is a spike: above ``factor`` times the running ``median``.

    Args:
        value: the value of this step.
        median: the running median of the steps before it (None: no history yet).
        factor: how many times the median a spike must exceed.
        floor: the median is taken as at least this (so a history of exact zeros can
            still be exceeded); 0 means a median of zero or below has no spikes.

    >>> is_spike(31.0, 1.5, 20.0), is_spike(29.0, 1.5, 20.0), is_spike(5.0, None, 3.0)
    (True, False, False)
    >>> is_spike(1e-9, 0.0, 20.0), is_spike(1e-9, 0.0, 20.0, floor=1e-12)
    (False, True)
    """
    if median is None or not math.isfinite(median):
        return False
    reference = max(median, floor)
    return reference > 0 and value > factor * reference


class RunningMedian:
    """The median of the last ``window`` values added, and of the first ``keep_first``.

    >>> history = RunningMedian(window=3, keep_first=2)
    >>> for x in (1.0, 5.0, 2.0, 9.0):
    ...     history.add(x)
    >>> history.median(), history.first_median(), len(history)
    (5.0, 3.0, 3)
    """

    def __init__(self, window: int, keep_first: int = 0) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self._first: list[float] = []
        self._keep_first = keep_first
        self._first_median: float | None = None  # cached: judged on every step

    def __len__(self) -> int:
        return len(self._recent)

    def add(self, value: float) -> None:
        """Append one value (the oldest of the window drops out)."""
        self._recent.append(value)
        if len(self._first) < self._keep_first:
            self._first.append(value)
            self._first_median = None

    def median(self) -> float | None:
        """Median of the window, or None while it is empty."""
        return float(np.median(self._recent)) if self._recent else None

    def first_median(self) -> float:
        """Median of the first ``keep_first`` values added (nan before any)."""
        if not self._first:
            return math.nan
        if self._first_median is None:
            self._first_median = float(np.median(self._first))
        return self._first_median


def count_spikes(values: Iterable[float], window: int = 50, factor: float = 3.0) -> int:
    """Steps whose value is a spike against the median of the previous ``window`` steps.

    Every step after the first is judged; a non-finite value counts as a spike, and
    (unlike the live detector's healthy-only history) every value enters the window.

    Args:
        values: one value per logged step, in order (e.g. the training loss).
        window: how many previous steps the median is taken over.
        factor: how many times that median a spike must exceed.

    >>> count_spikes([1.0, 1.1, 0.9, 5.0, 1.0, float("nan"), 1.0])
    2
    """
    history = RunningMedian(window)
    spikes = 0
    for i, value in enumerate(values):
        if i and (not math.isfinite(value) or is_spike(value, history.median(), factor)):
            spikes += 1
        history.add(value)
    return spikes
