"""The compact episode table: categories and codes must read exactly like plain columns."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.episodes.table import Collector
from vla_eval.errors import DataError

rows = st.lists(
    st.tuples(
        st.sampled_from(["", "a", "b"]),
        st.sampled_from(["pick", "place", "pour"]),
        st.sampled_from(["seen", "unseen"]),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.booleans(),
    ),
    max_size=30,
)


def _collect(items, files=1):
    out = Collector()
    for f in range(files):
        out.start_file(f"f{f}")
    for i, (policy, task, split, seed, success) in enumerate(items):
        out.add(policy, task, split, seed, success, i % files, i + 1)
    return out.table()


@settings(max_examples=100, deadline=None)
@given(rows)
def test_columns_and_categories_match_the_rows(items):
    unique = {(p, t, s, seed) for p, t, s, seed, _ in items}
    if len(unique) != len(items):
        with pytest.raises(DataError, match="duplicate episode"):
            _collect(items)
        return
    table = _collect(items)
    for k, field in enumerate(("policy", "task", "split")):
        column = [row[k] for row in items]
        assert getattr(table, field).tolist() == column
        values, codes = table.categorical(field)
        first_seen = list(dict.fromkeys(column))  # order of first appearance, by hand
        assert values.tolist() == first_seen
        assert codes.tolist() == [first_seen.index(v) for v in column]
    assert table.seed.tolist() == [row[3] for row in items]
    assert table.success.tolist() == [row[4] for row in items]
    mask = np.arange(len(items)) % 2 == 0
    part = table.select(mask)
    assert part.task.tolist() == [row[1] for row in items][::2]
    assert part.categorical("task")[0].tolist() == list(dict.fromkeys(part.task.tolist()))


def test_the_first_repeat_in_reading_order_is_reported_with_its_original():
    items = [
        ("", "pick", "seen", 5, True),
        ("", "pick", "seen", 6, True),
        ("", "pick", "seen", 7, True),
        ("", "pick", "seen", 7, False),  # line 4 repeats line 3
        ("", "pick", "seen", 5, False),  # line 5 repeats line 1, but later
    ]
    with pytest.raises(DataError, match=r"f0:4: duplicate .* seed 7\) already read at f0:3"):
        _collect(items)


def test_seed_outside_int64_is_refused():
    out = Collector()
    out.start_file("f")
    with pytest.raises(DataError, match="f:3: seed 9223372036854775808 is outside"):
        out.add("", "pick", "seen", 2**63, True, 0, 3)
