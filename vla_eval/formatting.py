"""How numbers are written for people: percentages and short human-readable numbers.

Every text report (success reports, comparisons, offline tables, experiment
summaries, findings) writes its percentages through `pct`, so a rate reads the same
everywhere. Pure standard library; imports nothing else from the package.
"""

from __future__ import annotations

import math


def number(value: float | None, digits: int = 2) -> str:
    """A number as a person would write it in a message: 3.1e4, 0.042, 12.5, nan.

    `digits` significant digits (at least the integer part); very large or very small
    magnitudes in a short exponent form. None is ``"n/a"``.

    >>> number(31000.0), number(0.04213), number(12.5), number(529.4), number(99.6)
    ('3.1e4', '0.042', '12', '529', '100')
    >>> number(0.00012), number(None), number(float("nan"))
    ('1.2e-4', 'n/a', 'nan')
    """
    if value is None:
        return "n/a"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e4 or abs(value) < 1e-3:
        mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    text = f"{value:.{digits}g}"
    return str(round(value)) if "e" in text else text  # 529, not 5.3e+02


def pct(x: float | None, digits: int | None = 1, *, none: str = "n/a", width: int = 0) -> str:
    """A fraction as a percentage: ``0.8512 -> "85.1%"``.

    Args:
        x: the fraction (1.0 is 100%); None or a non-finite value has no percentage
            and is written as `none`.
        digits: decimals after the point; None for "sensible precision" (two
            significant digits, as `number` writes them).
        none: the text for a missing value (``"n/a"``, ``"—"``, ...).
        width: right-align the result in this many characters (0: no padding).

    >>> pct(0.8512), pct(None), pct(0.25, digits=None), pct(0.00061, digits=None)
    ('85.1%', 'n/a', '25%', '0.061%')
    >>> pct(0.5, width=8), pct(None, none="—", width=8)
    ('   50.0%', '       —')
    """
    if x is None or not math.isfinite(x):
        text = none
    elif digits is None:
        text = f"{number(100.0 * x)}%"
    else:
        text = f"{100 * float(x):.{digits}f}%"
    return text.rjust(width)


def pvalue(p: float | None, none: str = "—") -> str:
    """A p-value: three decimals, or two significant digits below 0.001.

    >>> pvalue(0.04074), pvalue(0.000123), pvalue(None)
    ('0.041', '0.00012', '—')
    """
    if p is None:
        return none
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"
