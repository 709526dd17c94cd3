"""How many trials? Sample sizes for success-rate evaluations, planned before running them.

Three questions: how many trials per policy to detect an improvement from p0 to p1
(two-sided test at level alpha with given power); how many trials to pin a success
rate down to a target confidence-interval half-width; and, for a given number of
trials, the smallest improvement that can be detected. The two-arm formula is the
normal approximation with pooled variance under the null and no continuity
correction (Fleiss, Levin & Paik 2003, *Statistical Methods for Rates and
Proportions*, ch. 4, without the continuity correction):

    n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_{1-beta} sqrt(p0 q0 + p1 q1))^2 / (p1 - p0)^2

rounded up, with pbar = (p0 + p1) / 2. For 0.5 -> 0.7 at alpha 0.05 and power 0.8
it gives 92.999, so 93 per arm. Cohen's arcsine effect size h (Cohen 1988, ch. 6)
is offered as ``method="arcsine"``; the two agree near 0.5 (93 both for 0.5 -> 0.7)
but not near the ends (0.9 -> 0.99: 100 pooled, 80 arcsine). Neither is the power of
a test `compare` runs: `vla_eval.stats.exact_power` computes that exactly (Boschloo
has about 79% power at 93 per arm for 0.5 -> 0.7 and needs 95). The half-width plan
uses the Wilson interval the reports use, at the planning rate itself; the
observed rate varies, so `exact_power.trials_for_half_width_assured` plans with an
assurance instead. Standard library only
(``statistics.NormalDist``); never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

from vla_eval.errors import UsageError

PlanMethod = Literal["pooled", "arcsine"]
_MAX_TRIALS = 10**9


def _z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def _check_rate(p: float, name: str, open_interval: bool = True) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
        raise UsageError(f"{name} must be a number, got {p!r}")
    p = float(p)
    if open_interval and not 0.0 < p < 1.0:
        raise UsageError(f"{name} must lie strictly between 0 and 1, got {p}")
    if not open_interval and not 0.0 <= p <= 1.0:
        raise UsageError(f"{name} must lie between 0 and 1, got {p}")
    return p


def _check_alpha_power(alpha: float, power: float) -> tuple[float, float]:
    alpha = _check_rate(alpha, "alpha")
    power = _check_rate(power, "power")
    if power <= alpha / 2:
        raise UsageError(f"power ({power}) must exceed alpha/2 ({alpha / 2})")
    return alpha, power


def _n_continuous(p0: float, p1: float, alpha: float, power: float, method: str) -> float:
    za, zb = _z(1 - alpha / 2), _z(power)
    if method == "pooled":
        pbar = (p0 + p1) / 2
        num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
        return (num / (p1 - p0)) ** 2
    if method == "arcsine":
        h = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))
        return 2 * ((za + zb) / h) ** 2
    raise UsageError(f"unknown planning method {method!r}; choose pooled or arcsine")


def trials_to_detect(
    p0: float,
    p1: float,
    alpha: float = 0.05,
    power: float = 0.8,
    method: PlanMethod | str = "pooled",
) -> int:
    """Trials per policy for a two-sided test at level `alpha` to detect p0 -> p1.

    Args:
        p0: success rate of the baseline, in [0, 1].
        p1: success rate to detect, in [0, 1], different from p0.
        alpha: two-sided significance level.
        power: chance of detecting the difference if it is real.
        method: ``pooled`` (Fleiss et al. without continuity correction; default) or
            ``arcsine`` (Cohen's h).

    Returns:
        The number of trials for *each* policy.

    Example:
        >>> trials_to_detect(0.5, 0.7)
        93
    """
    p0 = _check_rate(p0, "p0", open_interval=False)
    p1 = _check_rate(p1, "p1", open_interval=False)
    alpha, power = _check_alpha_power(alpha, power)
    if p0 == p1:
        raise UsageError("p0 and p1 are equal: no number of trials detects a zero difference")
    return max(1, math.ceil(_n_continuous(p0, p1, alpha, power, method) - 1e-9))


def power_of(
    p0: float, p1: float, trials: int, alpha: float = 0.05, method: PlanMethod | str = "pooled"
) -> float:
    """Approximate power of the two-sided test with `trials` per policy (same formula).

    Example:
        >>> round(power_of(0.5, 0.7, 93), 3)
        0.8
    """
    p0 = _check_rate(p0, "p0", open_interval=False)
    p1 = _check_rate(p1, "p1", open_interval=False)
    alpha = _check_rate(alpha, "alpha")
    n = _check_trials(trials)
    za = _z(1 - alpha / 2)
    if p0 == p1:
        return alpha
    if method == "pooled":
        pbar = (p0 + p1) / 2
        sd0 = math.sqrt(2 * pbar * (1 - pbar))
        sd1 = math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
        if sd1 == 0:
            return 1.0
        zb = (abs(p1 - p0) * math.sqrt(n) - za * sd0) / sd1
    elif method == "arcsine":
        h = abs(2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0)))
        zb = h * math.sqrt(n / 2) - za
    else:
        raise UsageError(f"unknown planning method {method!r}; choose pooled or arcsine")
    return NormalDist().cdf(zb)


def wilson_half_width(rate: float, trials: int, confidence: float = 0.95) -> float:
    """Half the width of the Wilson interval when `rate` is observed in `trials` trials.

    Example:
        >>> round(wilson_half_width(0.5, 93), 4)
        0.0996
    """
    n = trials
    z = _z(1 - (1 - confidence) / 2)
    z2 = z * z
    return z / (1 + z2 / n) * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))


def trials_for_half_width(half_width: float, rate: float = 0.5, confidence: float = 0.95) -> int:
    """Fewest trials whose Wilson interval, at observed rate `rate`, has half-width
    at most `half_width`.

    ``rate = 0.5`` is the worst case, so its answer holds for any rate.

    Example:
        >>> trials_for_half_width(0.1)
        93
        >>> trials_for_half_width(0.05, rate=0.9)
        141
    """
    h = _check_rate(half_width, "half-width")
    if h > 0.5:
        raise UsageError(f"half-width must be at most 0.5, got {h}")
    p = _check_rate(rate, "rate", open_interval=False)
    from vla_eval.stats.intervals import check_confidence

    c = check_confidence(confidence)
    # The half-width falls with n; bracket by doubling, then bisect on integers.
    hi = 1
    while wilson_half_width(p, hi, c) > h:
        hi *= 2
        if hi > _MAX_TRIALS:
            raise UsageError(f"half-width {h} needs more than {_MAX_TRIALS} trials")
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if wilson_half_width(p, mid, c) <= h:
            hi = mid
        else:
            lo = mid
    return hi if hi > 0 else 1


@dataclass(frozen=True)
class DetectableDifference:
    """The smallest change from `p0` that `trials` per policy detect with `power`.

    Attributes:
        p0: baseline rate.
        trials: trials per policy.
        alpha, power: the test's level and power.
        increase: smallest p1 - p0 > 0 detectable, or None if even p1 = 1 is not.
        decrease: smallest p0 - p1 > 0 detectable, or None if even p1 = 0 is not.
    """

    p0: float
    trials: int
    alpha: float
    power: float
    increase: float | None
    decrease: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return dict(self.__dict__)


def minimum_detectable_difference(
    trials: int,
    p0: float = 0.5,
    alpha: float = 0.05,
    power: float = 0.8,
    method: PlanMethod | str = "pooled",
) -> DetectableDifference:
    """Smallest improvement (and degradation) from `p0` detectable with `trials` per policy.

    Solves the sample-size formula of `trials_to_detect` for p1 (without rounding).

    Example:
        >>> mdd = minimum_detectable_difference(93, p0=0.5)
        >>> round(mdd.increase, 3), round(mdd.decrease, 3)
        (0.2, 0.2)
    """
    n = _check_trials(trials)
    p0 = _check_rate(p0, "p0", open_interval=False)
    alpha, power = _check_alpha_power(alpha, power)
    if method not in ("pooled", "arcsine"):
        raise UsageError(f"unknown planning method {method!r}; choose pooled or arcsine")

    def solve(sign: int) -> float | None:
        end = 1.0 if sign > 0 else 0.0
        if end == p0 or _n_continuous(p0, end, alpha, power, method) > n:
            return None
        # n(p1) decreases as p1 moves away from p0; bisect for n(p1) = trials.
        near, far = p0, end
        for _ in range(200):
            mid = (near + far) / 2
            if mid == p0 or _n_continuous(p0, mid, alpha, power, method) > n:
                near = mid
            else:
                far = mid
        return abs(far - p0)

    return DetectableDifference(p0, n, alpha, power, solve(+1), solve(-1))


def _check_trials(trials: Any) -> int:
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise UsageError(f"trials must be a whole number of at least 1, got {trials!r}")
    return trials
