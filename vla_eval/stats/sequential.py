"""Anytime-valid evaluation: results that stay valid however often one looks.

A 95% Wilson interval is valid for one look at a fixed number of trials. Checking it
after every batch of rollouts and stopping when it looks good misses the true rate
far more often than 5% (docs/statistics.md). The statistics here are valid
simultaneously at every number of trials, by Ville's inequality: a nonnegative
martingale under the null exceeds 1/alpha with probability at most alpha, ever.

- `confidence_sequence`: for a success rate, the beta-binomial mixture (Robbins 1970;
  Howard, Ramdas, McAuliffe & Sekhon 2021, "Time-uniform, nonparametric,
  nonasymptotic confidence sequences", Ann. Statist. 49:1055-1080): after s successes
  in t trials, every p with ``B(a + s, b + t - s) / B(a, b) < alpha * p^s (1-p)^(t-s)``
  -- the p whose mixture likelihood ratio has not reached 1/alpha.
- `compare_sequentially`: two policies matched episode by episode (same seeds, or in
  the order they ran); under equal success rates each discordant pair is a fair coin,
  and the e-process is the same mixture's likelihood ratio against theta = 1/2 (a
  sequential sign test). The difference is decided once it reaches 1/alpha.

numpy and scipy only; never imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vla_eval.errors import UsageError
from vla_eval.stats.intervals import check_confidence

PRIOR = (0.5, 0.5)  # Beta(1/2, 1/2): Jeffreys' prior, the mixing distribution


def _log_mixture(s: int, t: int, p: float, a: float, b: float) -> float:
    """log of the mixture likelihood ratio against the point null p."""
    from scipy.special import betaln

    log_null = (s * math.log(p) if s else 0.0) + ((t - s) * math.log1p(-p) if t - s else 0.0)
    return betaln(a + s, b + t - s) - betaln(a, b) - log_null


@dataclass(frozen=True)
class ConfidenceSequence:
    """An anytime-valid interval for a success rate after `trials` trials.

    Attributes:
        successes, trials: the counts so far.
        estimate: successes / trials.
        lower, upper: every rate not yet rejected by the mixture martingale.
        confidence: 1 - alpha; the chance that the interval *ever*, at any number
            of trials, excludes the true rate is at most alpha.
        method: ``"beta-binomial-mixture"``.
    """

    successes: int
    trials: int
    estimate: float
    lower: float
    upper: float
    confidence: float
    method: str = "beta-binomial-mixture"

    @property
    def half_width(self) -> float:
        """Half the interval's width."""
        return (self.upper - self.lower) / 2

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return {**self.__dict__, "half_width": self.half_width}


def confidence_sequence(
    successes: int, trials: int, confidence: float = 0.95, prior: tuple[float, float] = PRIOR
) -> ConfidenceSequence:
    """The beta-binomial mixture confidence sequence at `successes` of `trials`.

    Example:
        >>> cs = confidence_sequence(17, 20)
        >>> round(cs.lower, 3), round(cs.upper, 3)
        (0.525, 0.987)
    """
    from scipy.optimize import brentq

    confidence = check_confidence(confidence)
    if isinstance(trials, bool) or int(trials) != trials or trials < 1:
        raise UsageError(f"trials must be a whole number of at least 1, got {trials!r}")
    if isinstance(successes, bool) or int(successes) != successes or not 0 <= successes <= trials:
        raise UsageError(f"successes must be a whole number in [0, {trials}], got {successes!r}")
    s, t = int(successes), int(trials)
    a, b = prior
    level = math.log(1 / (1 - confidence))
    p_hat = s / t

    def excess(p: float) -> float:
        return _log_mixture(s, t, p, a, b) - level

    eps = 1e-15
    lower = 0.0 if s == 0 or excess(eps) < 0 else brentq(excess, eps, p_hat, xtol=1e-12)
    upper = 1.0 if s == t or excess(1 - eps) < 0 else brentq(excess, p_hat, 1 - eps, xtol=1e-12)
    return ConfidenceSequence(s, t, p_hat, float(lower), float(upper), confidence)


@dataclass(frozen=True)
class SequentialComparison:
    """An anytime-valid comparison of two policies on matched episodes.

    Attributes:
        pairs: matched episodes so far.
        a_only, b_only: discordant pairs (only A / only B succeeded).
        e_value: the mixture likelihood ratio against equal rates; large values
            are evidence of a difference.
        alpha: the error rate; ``decided`` once ``e_value >= 1 / alpha``.
        decided: whether the difference is established (valid however often one
            looked before).
        better: the policy that is better, once decided, else None.
    """

    pairs: int
    a_only: int
    b_only: int
    e_value: float
    alpha: float
    decided: bool
    better: str | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON."""
        return dict(self.__dict__)


def compare_sequentially(
    a_only: int,
    b_only: int,
    pairs: int,
    alpha: float = 0.05,
    names: tuple[str, str] = ("A", "B"),
    prior: tuple[float, float] = PRIOR,
) -> SequentialComparison:
    """E-process for equal success rates from discordant matched pairs.

    Example:
        >>> c = compare_sequentially(12, 1, 40)
        >>> c.decided, c.better
        (True, 'A')
    """
    if not 0 < alpha < 1:
        raise UsageError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    for label, v in (("a_only", a_only), ("b_only", b_only), ("pairs", pairs)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise UsageError(f"{label} must be a non-negative whole number, got {v!r}")
    if a_only + b_only > pairs:
        raise UsageError("discordant pairs cannot outnumber the pairs")
    m = int(a_only) + int(b_only)
    log_e = _log_mixture(int(a_only), m, 0.5, *prior) if m else 0.0
    e_value = math.exp(min(log_e, 700.0))
    decided = e_value >= 1 / alpha
    better = (names[0] if a_only > b_only else names[1]) if decided else None
    return SequentialComparison(
        int(pairs), int(a_only), int(b_only), e_value, alpha, decided, better
    )
