"""Is policy A really better than policy B? Differences of success rates and their tests.

For two success rates (k_a of n_a against k_b of n_b) this module gives the
difference with Newcombe's hybrid-score interval (Newcombe 1998, "Interval estimation
for the difference between independent proportions: comparison of eleven methods",
Stat. Med. 17:873-890, method 10), built from the two Wilson intervals, and
`test_pair`, which adds the exact tests of `vla_eval.stats.exact_tests` (Fisher,
Boschloo, and McNemar's when both policies ran the same (task, split, seed)
episodes). For three or more policies, `holm` adjusts the pairwise p-values (Holm
1979) and `compact_letters` summarises which policies cannot be told apart. numpy
and the standard library at import time; scipy and statsmodels are imported only
inside the tests that need them, so reports that only need the interval stay light.
Never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.formatting import pvalue
from vla_eval.stats.exact_tests import boschloo_p, check_pair, fisher_p, mcnemar_p
from vla_eval.stats.intervals import Interval, binomial_interval, check_confidence


@dataclass(frozen=True)
class Difference:
    """Difference of two success rates, ``rate_a - rate_b``, with a confidence interval.

    Attributes:
        estimate: rate_a - rate_b.
        lower, upper: interval bounds, within [-1, 1].
        confidence: the interval's level.
        method: ``"newcombe"`` (hybrid score, built from Wilson intervals).
    """

    estimate: float
    lower: float
    upper: float
    confidence: float
    method: str = "newcombe"

    def contains(self, value: float) -> bool:
        """Whether `value` lies inside the closed interval."""
        return self.lower <= value <= self.upper

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return {
            "estimate": self.estimate,
            "lower": self.lower,
            "upper": self.upper,
            "confidence": self.confidence,
            "method": self.method,
        }


def newcombe_difference(
    k_a: Any, n_a: Any, k_b: Any, n_b: Any, confidence: float = 0.95
) -> Difference:
    """Newcombe's hybrid-score interval for ``k_a/n_a - k_b/n_b``.

    With Wilson intervals (l_a, u_a) and (l_b, u_b) for the two rates and
    d = p_a - p_b, the bounds are ``d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2)`` and
    ``d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2)`` (Newcombe 1998, method 10). Unlike
    the Wald interval it stays inside [-1, 1] and keeps close to its nominal
    coverage at the 10-100 trials robot evaluations use. Vectorised: array inputs
    give array fields.

    Example:
        >>> d = newcombe_difference(17, 20, 10, 20)
        >>> round(d.estimate, 2), round(d.lower, 6), round(d.upper, 6)
        (0.35, 0.059212, 0.573189)
    """
    a = binomial_interval(k_a, n_a, confidence, "wilson")
    b = binomial_interval(k_b, n_b, confidence, "wilson")
    d = a.estimate - b.estimate
    lower = d - np.sqrt((a.estimate - a.lower) ** 2 + (b.upper - b.estimate) ** 2)
    upper = d + np.sqrt((a.upper - a.estimate) ** 2 + (b.estimate - b.lower) ** 2)
    if np.ndim(d) == 0:
        return Difference(float(d), float(lower), float(upper), a.confidence)
    return Difference(d, lower, upper, a.confidence)


@dataclass(frozen=True)
class PairTest:
    """Everything said about one pair of success rates.

    Attributes:
        a, b: names of the two policies (or groups).
        rate_a, rate_b: Wilson intervals of each.
        difference: rate_a - rate_b with Newcombe's interval.
        fisher_p: Fisher's exact two-sided p-value.
        boschloo_p: Boschloo's exact two-sided p-value (None if not computed).
        pairs: number of episodes matched on (task, split, seed), 0 if unpaired.
        a_only, b_only: discordant pairs (only A / only B succeeded), if paired.
        mcnemar_p: McNemar's exact p-value, if paired.
        test: which test `p_value` comes from (McNemar if paired, else Boschloo,
            else Fisher).
        p_value: that test's p-value.
    """

    a: str
    b: str
    rate_a: Interval
    rate_b: Interval
    difference: Difference
    fisher_p: float
    boschloo_p: float | None
    pairs: int
    a_only: int | None
    b_only: int | None
    mcnemar_p: float | None
    test: str
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return {
            "a": self.a,
            "b": self.b,
            "rate_a": self.rate_a.to_dict(),
            "rate_b": self.rate_b.to_dict(),
            "difference": self.difference.to_dict(),
            "fisher_p": self.fisher_p,
            "boschloo_p": self.boschloo_p,
            "paired": self.pairs > 0,
            "pairs": self.pairs,
            "a_only": self.a_only,
            "b_only": self.b_only,
            "mcnemar_p": self.mcnemar_p,
            "test": self.test,
            "p_value": self.p_value,
        }


def test_pair(
    a: str,
    k_a: int,
    n_a: int,
    b: str,
    k_b: int,
    n_b: int,
    confidence: float = 0.95,
    discordant: tuple[int, int, int] | None = None,
) -> PairTest:
    """Compare two success rates with every test that applies.

    Args:
        a, b: names for the two sides.
        k_a, n_a, k_b, n_b: successes and trials of each.
        confidence: level of the intervals.
        discordant: for paired episodes, ``(pairs, a_only, b_only)``: the number of
            matched episodes and the discordant counts; McNemar's test is then the
            primary test.
    """
    confidence = check_confidence(confidence)
    k_a, n_a, k_b, n_b = check_pair(k_a, n_a, k_b, n_b)
    diff = newcombe_difference(k_a, n_a, k_b, n_b, confidence)
    fisher = fisher_p(k_a, n_a, k_b, n_b)
    boschloo = boschloo_p(k_a, n_a, k_b, n_b)
    pairs, a_only, b_only, mcnemar = 0, None, None, None
    if discordant is not None:
        pairs, a_only, b_only = (int(x) for x in discordant)
        mcnemar = mcnemar_p(a_only, b_only)
    if mcnemar is not None:
        test, p = "mcnemar-exact", mcnemar
    elif boschloo is not None:
        test, p = "boschloo", boschloo
    else:
        test, p = "fisher", fisher
    return PairTest(
        a=a,
        b=b,
        rate_a=binomial_interval(k_a, n_a, confidence),
        rate_b=binomial_interval(k_b, n_b, confidence),
        difference=diff,
        fisher_p=fisher,
        boschloo_p=boschloo,
        pairs=pairs,
        a_only=a_only,
        b_only=b_only,
        mcnemar_p=mcnemar,
        test=test,
        p_value=p,
    )


# pytest would otherwise collect `test_pair` as a test when this module is imported.
test_pair.__test__ = False  # type: ignore[attr-defined]


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


def compact_letters(
    names: Sequence[str], rates: Sequence[float], different: np.ndarray
) -> dict[str, str]:
    """Letters that group policies which cannot be told apart, best first.

    Policies are sorted by rate; each letter marks a maximal run of consecutive
    policies in which no pair differs significantly. Two policies that share a
    letter are not significantly different (the usual "compact letter display" of
    post-hoc tests, in its line form).

    Args:
        names: (policies,) names.
        rates: (policies,) success rates, used for the order.
        different: (policies, policies) bool, True where a pair differs significantly.

    Example:
        >>> diff = np.array([[0, 0, 1], [0, 0, 0], [1, 0, 0]], dtype=bool)
        >>> compact_letters(["x", "y", "z"], [0.9, 0.7, 0.5], diff)
        {'x': 'a', 'y': 'ab', 'z': 'b'}
    """
    m = len(names)
    order = sorted(range(m), key=lambda i: -rates[i])
    letters: dict[str, str] = {n: "" for n in names}
    last_end = -1
    next_letter = 0
    for start in range(m):
        end = start
        while end + 1 < m and not any(
            different[order[end + 1], order[j]] for j in range(start, end + 1)
        ):
            end += 1
        if end > last_end:  # not inside an earlier run
            letter = _letter(next_letter)
            next_letter += 1
            for j in range(start, end + 1):
                letters[names[order[j]]] += letter
            last_end = end
    return letters


def _letter(i: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    return alphabet[i] if i < 26 else alphabet[i // 26 - 1] + alphabet[i % 26]


def verdict(
    test: PairTest, alpha: float, p_value: float | None = None, adjusted: bool = False
) -> str:
    """One plain sentence on a comparison, e.g. for the terminal.

    Args:
        test: the comparison.
        alpha: significance level.
        p_value: the p-value to judge by, if not the test's own (e.g. Holm-adjusted).
        adjusted: say that `p_value` is Holm-adjusted.
    """
    p = test.p_value if p_value is None else p_value
    d = test.difference
    # Say it the way round a reader expects: the better policy first, a positive gap.
    first, second = (test.a, test.b) if d.estimate >= 0 else (test.b, test.a)
    sign = 1 if d.estimate >= 0 else -1
    est, lo, hi = (
        sign * d.estimate,
        min(sign * d.lower, sign * d.upper),
        max(sign * d.lower, sign * d.upper),
    )
    gap = f"{100 * est:+.1f} points ({100 * d.confidence:g}% CI {100 * lo:+.1f} to {100 * hi:+.1f})"
    test_p = f"{_test_name(test.test)} p = {pvalue(p)}" + (" (Holm-adjusted)" if adjusted else "")
    if p <= alpha:
        return f"{first} beats {second} by {gap}, {test_p}."
    return (
        f"No significant difference between {first} and {second}: {gap}, {test_p}; "
        "the data cannot tell these two apart."
    )


def _test_name(test: str) -> str:
    return {"mcnemar-exact": "McNemar exact", "boschloo": "Boschloo", "fisher": "Fisher"}.get(
        test, test
    )
