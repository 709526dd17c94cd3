"""Multiple comparisons: Holm's adjustment, the level Holm judges each pair at, letters.

With three or more policies every pair is tested; `holm` adjusts the p-values so the
chance of any false "significant" stays at alpha (Holm 1979), `holm_levels` gives the
level each pair is judged at (the comparison's intervals use it), and
`compact_letters` summarises which policies cannot be told apart (Piepho 2004).
numpy at import time, statsmodels inside `holm`; never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_eval.errors import UsageError


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of several p-values (statsmodels multipletests).

    Controls the chance of any false "significant" among all the comparisons at the
    nominal level, without assuming independence (Holm 1979, Scand. J. Statist. 6:65-70).

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    if len(p_values) == 0:
        return []
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    if np.any(~np.isfinite(p) | (p < 0) | (p > 1)):
        raise UsageError("p-values must lie in [0, 1]")
    return [float(x) for x in multipletests(p, method="holm")[1]]


def holm_levels(p_values: Sequence[float], alpha: float) -> list[float]:
    """The level at which Holm's step-down procedure judges each hypothesis.

    With the m p-values sorted, the i-th smallest (i = 0, 1, ...) is compared with
    alpha / (m - i) until the first that fails; that one and every later one are
    judged at the level where the procedure stopped. A test at its own level agrees
    with the Holm-adjusted p-value against alpha, so an interval at confidence
    ``1 - level`` tells the same story as the adjusted p-value (it is not a
    simultaneous interval: that would be Bonferroni's alpha / m for every pair).

    Example:
        >>> [round(x, 4) for x in holm_levels([0.01, 0.04, 0.03], 0.05)]
        [0.0167, 0.025, 0.025]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    levels = [0.0] * m
    stopped: float | None = None
    for rank, i in enumerate(order):
        level = alpha / (m - rank)
        if stopped is None and p_values[i] > level:
            stopped = level
        levels[i] = level if stopped is None else stopped
    return levels


def compact_letters(
    names: Sequence[str], rates: Sequence[float], different: np.ndarray
) -> dict[str, str]:
    """Compact letter display: policies sharing a letter are not significantly different.

    The insert-absorb algorithm (Piepho 2004, "An algorithm for a letter-based
    representation of all-pairwise comparisons", J. Comput. Graph. Stat. 13:456-466):
    start with one group holding every policy; for each significant pair, split every
    group holding both into two copies, one without each; then drop any group
    contained in another. Two policies then share a letter exactly when they do not
    differ significantly. Letters are given in order of each group's best rate.

    Args:
        names: (policies,) names.
        rates: (policies,) success rates, used for the order of letters.
        different: (policies, policies) bool, True where a pair differs significantly.

    Example:
        >>> diff = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=bool)
        >>> compact_letters(["x", "y", "z"], [0.9, 0.7, 0.5], diff)
        {'x': 'a', 'y': 'b', 'z': 'a'}
    """
    m = len(names)
    groups: list[frozenset[int]] = [frozenset(range(m))]
    for i in range(m):
        for j in range(i + 1, m):
            if not different[i, j]:
                continue
            split: list[frozenset[int]] = []
            for g in groups:
                split += [g - {i}, g - {j}] if i in g and j in g else [g]
            # absorb: keep only groups not contained in another
            unique = list(dict.fromkeys(split))
            groups = [g for g in unique if not any(g < h for h in unique)]
    order = sorted(range(m), key=lambda i: (-rates[i], i))
    position = {i: r for r, i in enumerate(order)}
    groups.sort(key=lambda g: sorted(position[i] for i in g))
    letters = {n: "" for n in names}
    for k, g in enumerate(groups):
        for i in sorted(g, key=position.__getitem__):
            letters[names[i]] += _letter(k)
    return {n: "".join(sorted(v)) for n, v in letters.items()}


def _letter(i: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return alphabet[i] if i < 26 else alphabet[i // 26 - 1] + alphabet[i % 26]
