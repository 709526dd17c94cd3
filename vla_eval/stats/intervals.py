"""Confidence intervals for a binomial success rate (k successes in n trials).

Robot evaluations run 10-100 trials per task, where the textbook normal ("Wald")
interval is badly wrong; this module gives the intervals that hold up there
(see docs/statistics.md). The scalar Wilson path uses only the standard library, so
`vla-eval wilson` starts fast; numpy is imported only for array inputs and scipy
only for the beta-quantile methods (Clopper-Pearson, Jeffreys). Never imports torch.

References: Wilson (1927); Newcombe (1998), "Two-sided confidence intervals for the
single proportion: comparison of seven methods", Stat. Med. 17:857-872; Clopper &
Pearson (1934); Agresti & Coull (1998); Brown, Cai & DasGupta (2001), Stat. Sci. 16.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal, get_args

from vla_eval.errors import UsageError
from vla_eval.formatting import pct

Method = Literal["wilson", "wilson-cc", "clopper-pearson", "jeffreys", "agresti-coull"]
METHODS: tuple[str, ...] = get_args(Method)

METHOD_NAMES = {
    "wilson": "Wilson",
    "wilson-cc": "Wilson-cc",
    "clopper-pearson": "Clopper-Pearson",
    "jeffreys": "Jeffreys",
    "agresti-coull": "Agresti-Coull",
}


@dataclass(frozen=True)
class Interval:
    """A point estimate and a two-sided confidence interval for a proportion.

    For array inputs, `estimate`, `lower`, `upper`, `successes` and `trials` are
    numpy arrays of the broadcast shape.
    """

    estimate: Any
    lower: Any
    upper: Any
    confidence: float
    method: str
    successes: Any
    trials: Any

    @property
    def width(self) -> Any:
        """Upper minus lower bound."""
        return self.upper - self.lower

    def contains(self, p: float) -> Any:
        """Whether `p` lies inside the (closed) interval."""
        return (self.lower <= p) & (p <= self.upper)

    def describe(self) -> str:
        """One-line reading, e.g. ``17/20 = 85.0% (95% Wilson CI 64.0%-94.8%)``.

        >>> binomial_interval(17, 20).describe()
        '17/20 = 85.0% (95% Wilson CI 64.0%-94.8%)'
        """
        if hasattr(self.estimate, "shape") and self.estimate.shape != ():
            return "\n".join(
                Interval(e, lo, hi, self.confidence, self.method, k, n).describe()
                for e, lo, hi, k, n in zip(
                    self.estimate.ravel(),
                    self.lower.ravel(),
                    self.upper.ravel(),
                    self.successes.ravel(),
                    self.trials.ravel(),
                    strict=True,
                )
            )
        return (
            f"{int(self.successes)}/{int(self.trials)} = {pct(self.estimate)} "
            f"({_conf_label(self.confidence)} {METHOD_NAMES[self.method]} CI "
            f"{pct(self.lower)}-{pct(self.upper)})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view for JSON (arrays become lists)."""
        out = {}
        for key in ("estimate", "lower", "upper", "confidence", "method", "successes", "trials"):
            value = getattr(self, key)
            out[key] = value.tolist() if hasattr(value, "tolist") else value
        return out


def _conf_label(confidence: float) -> str:
    return f"{100 * confidence:g}%"


# --- validation (once, at the boundary) -------------------------------------------


def check_method(method: str) -> str:
    """Return `method` if known, else raise a UsageError listing the choices."""
    if method not in METHODS:
        raise UsageError(f"unknown interval method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def check_confidence(confidence: float) -> float:
    """Return `confidence` as float if it lies strictly between 0 and 1."""
    if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real):
        raise UsageError(f"confidence must be a number in (0, 1), got {confidence!r}")
    c = float(confidence)
    if not (0.0 < c < 1.0):
        raise UsageError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return c


def parse_count(text: str, name: str) -> int:
    """Parse a command-line count: a non-negative integer written in decimal."""
    s = text.strip()
    if not s.lstrip("+").isdigit():
        raise UsageError(f"{name} must be a non-negative whole number, got {text!r}")
    return int(s)


def parse_confidence(text: str) -> float:
    """Parse a command-line confidence level; accepts 0.95 or 95%."""
    s = text.strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise UsageError(f"--confidence must be a number in (0, 1), got {text!r}") from None
    return check_confidence(value)


def _check_counts_scalar(successes: Any, trials: Any) -> tuple[int, int]:
    for name, value in (("successes", successes), ("trials", trials)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise UsageError(f"{name} must be a whole number, got {value!r}")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise UsageError(f"{name} must be a whole number, got {value!r}")
        if value < 0:
            raise UsageError(f"{name} must not be negative, got {value!r}")
    k, n = int(successes), int(trials)
    if n == 0:
        raise UsageError("trials must be at least 1: a success rate over 0 trials is undefined")
    if k > n:
        raise UsageError(f"successes ({k}) cannot exceed trials ({n})")
    return k, n


def _check_counts_array(successes: Any, trials: Any) -> tuple[Any, Any]:
    import numpy as np

    k = np.asarray(successes)
    n = np.asarray(trials)
    for name, a in (("successes", k), ("trials", n)):
        if a.dtype == bool or not (
            np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)
        ):
            raise UsageError(f"{name} must be whole numbers, got dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a) & (a == np.floor(a))):
            raise UsageError(f"{name} must be whole numbers")
        if np.any(a < 0):
            raise UsageError(f"{name} must not be negative")
    if np.any(n == 0):
        raise UsageError("trials must be at least 1: a success rate over 0 trials is undefined")
    try:
        k, n = np.broadcast_arrays(k.astype(np.int64), n.astype(np.int64))
    except ValueError:
        raise UsageError(f"successes {k.shape} and trials {n.shape} do not broadcast") from None
    if np.any(k > n):
        raise UsageError("successes cannot exceed trials")
    return k, n


# --- the intervals ----------------------------------------------------------------
# Each formula is written once with plain arithmetic, so the same code serves Python
# floats (math.sqrt) and numpy arrays (np.sqrt). Edge handling (k = 0, k = n) and
# truncation to [0, 1] happen in `_finish`.


def _wilson(k, n, z, sqrt, cc: bool):
    # Newcombe (1998) methods 3 and 4, written as in his eqs. (3)-(4).
    z2 = z * z
    denom = 2 * (n + z2)
    center = (2 * k + z2) / denom
    if not cc:
        delta = z * sqrt(4 * k * (n - k) / n + z2) / denom
        return center - delta, center + delta
    p = k / n
    q = 1 - p
    # At k = 0 (k = n) the lower (upper) radicand can be negative; that bound is
    # replaced by 0 (1) in _finish, so clamp here only to keep sqrt defined.
    rad_lo = z2 - 2 - 1 / n + 4 * p * (n * q + 1)
    rad_hi = z2 + 2 - 1 / n + 4 * p * (n * q - 1)
    lo = center - (1 + z * sqrt(rad_lo * (rad_lo > 0))) / denom
    hi = center + (1 + z * sqrt(rad_hi * (rad_hi > 0))) / denom
    return lo, hi


def _agresti_coull(k, n, z, sqrt):
    n_t = n + z * z
    p_t = (k + z * z / 2) / n_t
    half = z * sqrt(p_t * (1 - p_t) / n_t)
    return p_t - half, p_t + half


def _beta_bounds(k, n, alpha, method):
    from scipy.special import betaincinv

    if method == "clopper-pearson":
        # Bounds for k = 0 / k = n are set in _finish; a valid (positive) shape
        # parameter is passed here so betaincinv does not warn.
        lo = betaincinv(k + (k == 0), n - k + 1, alpha / 2)
        hi = betaincinv(k + 1, n - k + (k == n), 1 - alpha / 2)
    else:  # jeffreys: equal-tailed Beta(k + 1/2, n - k + 1/2) posterior interval
        lo = betaincinv(k + 0.5, n - k + 0.5, alpha / 2)
        hi = betaincinv(k + 0.5, n - k + 0.5, 1 - alpha / 2)
    return lo, hi


# Methods whose bound is exactly 0 at k = 0 and 1 at k = n. Jeffreys and
# Agresti-Coull are left as their formulas give them (as in statsmodels), so
# Jeffreys' lower bound at k = 0 is small but positive.
_PINNED = ("wilson", "wilson-cc", "clopper-pearson")


def _bounds(k, n, confidence: float, method: str, sqrt):
    alpha = 1 - confidence
    if method in ("clopper-pearson", "jeffreys"):
        return _beta_bounds(k, n, alpha, method)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    if method == "agresti-coull":
        return _agresti_coull(k, n, z, sqrt)
    return _wilson(k, n, z, sqrt, cc=method == "wilson-cc")


def binomial_interval(
    successes: Any,
    trials: Any,
    confidence: float = 0.95,
    method: Method | str = "wilson",
) -> Interval:
    """Two-sided confidence interval for a success rate.

    Args:
        successes: number of successes k (an int, or an integer array).
        trials: number of trials n >= 1 (an int, or an integer array broadcastable
            against `successes`).
        confidence: confidence level in (0, 1), e.g. 0.95.
        method: ``wilson`` (the default; recommended), ``wilson-cc`` (Wilson with
            continuity correction), ``clopper-pearson`` (exact, conservative),
            ``jeffreys`` (equal-tailed Bayesian, Beta(1/2, 1/2) prior) or
            ``agresti-coull``.

    Returns:
        An `Interval`; for array input its fields are arrays of the broadcast shape.

    Raises:
        UsageError: successes > trials, negative or non-integer counts, trials = 0,
            confidence outside (0, 1), or an unknown method.

    Example:
        >>> ci = binomial_interval(17, 20)
        >>> round(ci.lower, 5), round(ci.upper, 5)
        (0.63958, 0.94763)
    """
    method = check_method(method)
    confidence = check_confidence(confidence)
    if all(
        getattr(v, "ndim", 0) == 0 and not isinstance(v, (list, tuple)) for v in (successes, trials)
    ):
        k, n = _check_counts_scalar(successes, trials)
        lo, hi = _bounds(k, n, confidence, method, math.sqrt)
        lo, hi = min(max(float(lo), 0.0), 1.0), min(max(float(hi), 0.0), 1.0)
        if method in _PINNED:
            lo = 0.0 if k == 0 else lo
            hi = 1.0 if k == n else hi
        return Interval(k / n, lo, hi, confidence, method, k, n)

    import numpy as np

    k, n = _check_counts_array(successes, trials)
    kf, nf = k.astype(float), n.astype(float)
    lo, hi = _bounds(kf, nf, confidence, method, np.sqrt)
    lo = np.clip(np.asarray(lo, dtype=float), 0.0, 1.0)
    hi = np.clip(np.asarray(hi, dtype=float), 0.0, 1.0)
    if method in _PINNED:
        lo = np.where(k == 0, 0.0, lo)
        hi = np.where(k == n, 1.0, hi)
    return Interval(kf / nf, lo, hi, confidence, method, k, n)


def format_table(intervals: list[Interval]) -> str:
    """Several methods for the same counts, side by side, as aligned text."""
    first = intervals[0]
    head = (
        f"{int(first.successes)}/{int(first.trials)} = {pct(first.estimate)}, "
        f"{_conf_label(first.confidence)} intervals:"
    )
    rows = [head, f"  {'method':<16} {'lower':>8} {'upper':>8} {'width':>8}"]
    for ci in intervals:
        rows.append(
            f"  {ci.method:<16} {pct(ci.lower, width=8)} {pct(ci.upper, width=8)} "
            f"{pct(ci.width, width=8)}"
        )
    return "\n".join(rows)
