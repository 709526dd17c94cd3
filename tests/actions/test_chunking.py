"""Action chunks: hand-worked chunks, episodes never crossed, open-loop execution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.actions import chunk_actions, chunk_episodes, execute_chunk
from vla_eval.errors import UsageError


def test_chunk_actions_by_hand():
    a = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    chunks, valid = chunk_actions(a, horizon=3)
    assert chunks[..., 0].tolist() == [[0, 1, 2], [1, 2, 2], [2, 2, 2]]
    assert valid.tolist() == [[True] * 3, [True, True, False], [True, False, False]]
    zero, _ = chunk_actions(a, horizon=3, pad="zero")
    assert zero[..., 1].tolist() == [[10, 11, 12], [11, 12, 0], [12, 0, 0]]


def test_chunk_episodes_never_crosses_an_episode():
    a = np.arange(5.0)[:, None]
    ids = np.array([7, 7, 7, 3, 3])
    chunks, valid = chunk_episodes(a, ids, horizon=2)
    assert chunks[..., 0].tolist() == [[0, 1], [1, 2], [2, 2], [3, 4], [4, 4]]
    assert valid.tolist() == [
        [True, True],
        [True, True],
        [True, False],
        [True, True],
        [True, False],
    ]
    with pytest.raises(UsageError, match="contiguous"):
        chunk_episodes(a, np.array([1, 1, 2, 1, 1]), horizon=2)


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 8), min_size=1, max_size=5), horizon=st.integers(1, 6))
def test_chunk_episodes_equals_per_episode_chunks(lengths, horizon):
    rng = np.random.default_rng(sum(lengths))
    parts = [rng.normal(size=(n, 2)) for n in lengths]
    ids = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)])
    chunks, valid = chunk_episodes(np.concatenate(parts), ids, horizon)
    ref = [chunk_actions(p, horizon) for p in parts]
    assert np.array_equal(chunks, np.concatenate([c for c, _ in ref]))
    assert np.array_equal(valid, np.concatenate([v for _, v in ref]))


def test_execute_chunk():
    c = np.zeros((2, 4, 7))
    assert execute_chunk(c, 2).shape == (2, 2, 7)
    with pytest.raises(UsageError):
        execute_chunk(c, 5)
