"""Is policy A really better than policy B? Differences of success rates and their tests.

For two success rates (k_a of n_a against k_b of n_b) this module gives the
difference with one interval per design: Newcombe's hybrid-score interval for
independent samples (Newcombe 1998, "Interval estimation for the difference between
independent proportions: comparison of eleven methods", Stat. Med. 17:873-890,
method 10) and Newcombe's interval for paired samples when both policies ran the same
(task, split, seed) episodes (Newcombe 1998, "Improved confidence intervals for the
difference between binomial proportions based on paired data", Stat. Med.
17:2635-2650, method 10). `test_pair` adds the exact tests of
`vla_eval.stats.exact_tests` (McNemar's when paired, else Boschloo's), and `decide`
says whether interval and test agree, or that the comparison is borderline. For three
or more policies, `holm` adjusts the pairwise p-values (Holm 1979), `holm_levels`
gives the level at which Holm's procedure judges each pair (the intervals use it),
and `compact_letters` summarises which policies cannot be told apart. numpy
and the standard library at import time; scipy and statsmodels are imported only
inside the tests that need them, so reports that only need the interval stay light.
Never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.formatting import pvalue
from vla_eval.stats.exact_tests import boschloo_p, check_pair, fisher_p, mcnemar_p
from vla_eval.stats.intervals import Interval, binomial_interval, check_confidence
from vla_eval.stats.multiple import compact_letters as compact_letters
from vla_eval.stats.multiple import holm as holm
from vla_eval.stats.multiple import holm_levels as holm_levels


@dataclass(frozen=True)
class Difference:
    """Difference of two success rates, ``rate_a - rate_b``, with a confidence interval.

    Attributes:
        estimate: rate_a - rate_b.
        lower, upper: interval bounds, within [-1, 1].
        confidence: the interval's level.
        method: ``"newcombe"`` (independent samples) or ``"newcombe-paired"``;
            both are built from Wilson intervals.
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


def paired_difference(
    both: int, a_only: int, b_only: int, neither: int, confidence: float = 0.95
) -> Difference:
    """Newcombe's interval for the difference of two rates measured on the same episodes.

    With n matched episodes of which `both` succeeded for both policies, `a_only` only
    for A, `b_only` only for B and `neither` for neither, p_a = (both + a_only)/n and
    p_b = (both + b_only)/n. From their Wilson intervals (l_a, u_a), (l_b, u_b) and the
    correlation phi of the two outcomes, the bounds are
    ``d - sqrt((p_a - l_a)^2 - 2 phi (p_a - l_a)(u_b - p_b) + (u_b - p_b)^2)`` and
    ``d + sqrt((u_a - p_a)^2 - 2 phi (u_a - p_a)(p_b - l_b) + (p_b - l_b)^2)``, where
    phi's numerator ``both * neither - a_only * b_only`` is reduced by n/2 when
    positive (0 if that makes it negative), as Newcombe (1998, method 10) specifies.
    A positive correlation narrows the interval; the unpaired interval ignores it.

    Example:
        >>> d = paired_difference(8, 9, 2, 1)
        >>> round(d.estimate, 2), d.method
        (0.35, 'newcombe-paired')
    """
    for name, v in (("both", both), ("a_only", a_only), ("b_only", b_only), ("neither", neither)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise UsageError(f"{name} must be a non-negative whole number, got {v!r}")
    both, a_only, b_only, neither = int(both), int(a_only), int(b_only), int(neither)
    n = both + a_only + b_only + neither
    if n == 0:
        raise UsageError("no matched episodes: a paired difference needs at least one")
    a = binomial_interval(both + a_only, n, confidence, "wilson")
    b = binomial_interval(both + b_only, n, confidence, "wilson")
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    cross = both * neither - a_only * b_only
    numerator = max(cross - n / 2, 0.0) if cross > 0 else float(cross)
    phi = numerator / math.sqrt(margins) if margins > 0 else 0.0
    d = a.estimate - b.estimate
    da_lo, da_hi = a.estimate - a.lower, a.upper - a.estimate
    db_lo, db_hi = b.estimate - b.lower, b.upper - b.estimate
    lower = d - math.sqrt(max(da_lo**2 - 2 * phi * da_lo * db_hi + db_hi**2, 0.0))
    upper = d + math.sqrt(max(da_hi**2 - 2 * phi * da_hi * db_lo + db_lo**2, 0.0))
    return Difference(d, max(lower, -1.0), min(upper, 1.0), a.confidence, "newcombe-paired")


@dataclass(frozen=True)
class PairTest:
    """Everything said about one pair of success rates.

    Attributes:
        a, b: names of the two policies (or groups).
        rate_a, rate_b: Wilson intervals of each.
        difference: rate_a - rate_b with the interval of the design: Newcombe's
            paired interval when paired, else Newcombe's unpaired one.
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
    fisher = fisher_p(k_a, n_a, k_b, n_b)
    boschloo = boschloo_p(k_a, n_a, k_b, n_b)
    pairs, a_only, b_only, mcnemar = 0, None, None, None
    if discordant is not None:
        pairs, a_only, b_only = (int(x) for x in discordant)
        if not (n_a == n_b == pairs and 0 <= k_a - a_only == k_b - b_only):
            raise UsageError("paired counts need every episode of both policies matched")
        mcnemar = mcnemar_p(a_only, b_only)
        both = k_a - a_only
        diff = paired_difference(both, a_only, b_only, pairs - both - a_only - b_only, confidence)
    else:
        diff = newcombe_difference(k_a, n_a, k_b, n_b, confidence)
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


def with_confidence(test: PairTest, confidence: float) -> PairTest:
    """The same comparison with its difference interval at another confidence level."""
    d = test.difference
    if d.method == "newcombe-paired":
        both = test.rate_a.successes - test.a_only
        neither = test.pairs - both - test.a_only - test.b_only
        diff = paired_difference(both, test.a_only, test.b_only, neither, confidence)
    else:
        ra, rb = test.rate_a, test.rate_b
        diff = newcombe_difference(ra.successes, ra.trials, rb.successes, rb.trials, confidence)
    return replace(test, difference=diff)


Decision = str  # "significant" | "not significant" | "borderline"


def decide(p_value: float, alpha: float, difference: Difference) -> Decision:
    """Whether a test and an interval at the matching level tell the same story.

    ``significant`` when the p-value is at most `alpha` and the interval excludes 0;
    ``not significant`` when the p-value exceeds `alpha` and the interval contains 0;
    ``borderline`` when they disagree (an interval that does not invert the test can
    do so for a few tables near the boundary).
    """
    test_says = p_value <= alpha
    interval_says = not difference.contains(0.0)
    if test_says and interval_says:
        return "significant"
    if not test_says and not interval_says:
        return "not significant"
    return "borderline"


def verdict(
    test: PairTest, alpha: float, p_value: float | None = None, adjusted: bool = False
) -> str:
    """One plain sentence on a comparison whose interval and test agree, or "borderline".

    Args:
        test: the comparison, its difference interval at the level the test is judged
            at (see `holm_levels` and `with_confidence`).
        alpha: significance level for `p_value`.
        p_value: the p-value to judge by, if not the test's own (e.g. Holm-adjusted).
        adjusted: say that `p_value` is Holm-adjusted.
    """
    p = test.p_value if p_value is None else p_value
    d = test.difference
    # Say it the way round a reader expects: the better policy first, a positive gap.
    first, second = (test.a, test.b) if d.estimate >= 0 else (test.b, test.a)
    sign = 1 if d.estimate >= 0 else -1
    lo, hi = sorted((sign * d.lower, sign * d.upper))
    kind = "paired " if d.method == "newcombe-paired" else ""
    gap = (
        f"{_points(sign * d.estimate)} points ({_level(d.confidence)}% {kind}CI "
        f"{_points(lo)} to {_points(hi)})"
    )
    test_p = f"{_test_name(test.test)} p = {pvalue(p)}" + (" (Holm-adjusted)" if adjusted else "")
    decision = decide(p, alpha, d)
    if decision == "significant":
        return f"{first} beats {second} by {gap}, {test_p}."
    if decision == "not significant":
        return (
            f"No significant difference between {first} and {second}: {gap}, {test_p}; "
            "the data cannot tell these two apart."
        )
    interval_word = "excludes" if not d.contains(0.0) else "contains"
    test_word = "reaches" if p <= alpha else "does not reach"
    return (
        f"Borderline between {first} and {second}: {gap} {interval_word} 0, but {test_p} "
        f"{test_word} alpha = {alpha:.3g}; treat this pair as undecided."
    )


def _points(x: float) -> str:
    """Percentage points with a sign, one decimal unless that would hide the sign."""
    text = f"{100 * x:+.1f}"
    if x != 0 and float(text) == 0:
        text = f"{100 * x:+.2g}"
    return text


def _level(confidence: float) -> str:
    return f"{100 * confidence:.4g}"


def _test_name(test: str) -> str:
    return {"mcnemar-exact": "McNemar exact", "boschloo": "Boschloo", "fisher": "Fisher"}.get(
        test, test
    )
