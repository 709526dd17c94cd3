"""Percentages and short numbers as the text reports write them."""

from __future__ import annotations

import math

import pytest

from vla_eval.formatting import number, pct


@pytest.mark.parametrize(
    ("args", "kwargs", "text"),
    [
        ((0.85,), {}, "85.0%"),
        ((1,), {}, "100.0%"),
        ((0.123456,), {"digits": 2}, "12.35%"),
        ((None,), {}, "n/a"),
        ((math.nan,), {}, "n/a"),
        ((math.inf,), {"none": "—"}, "—"),
        ((0.5,), {"width": 8}, "   50.0%"),
        ((None,), {"none": "—", "width": 8}, "       —"),
        ((0.0312,), {"digits": None}, "3.1%"),
        ((0.25,), {"digits": None}, "25%"),
    ],
)
def test_pct(args, kwargs, text):
    assert pct(*args, **kwargs) == text


def test_number_short_forms():
    assert [number(v) for v in (31000.0, 0.04213, 12.5, 0.0, -0.00012, None)] == [
        "3.1e4",
        "0.042",
        "12",
        "0",
        "-1.2e-4",
        "n/a",
    ]
