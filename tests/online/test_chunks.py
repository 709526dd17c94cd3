"""Executing a policy's actions: single actions, open-loop chunks, temporal ensembling, bad answers."""

from __future__ import annotations

import numpy as np
import pytest

from vla_eval import online
from vla_eval.envs.tabletop import TabletopEnv
from vla_eval.errors import UsageError
from vla_eval.online.chunks import as_chunk


def test_chunk_execution_modes() -> None:
    env = TabletopEnv()
    calls = []

    def chunked(obs):
        calls.append(len(obs["env_index"]))
        base = np.zeros((len(obs["env_index"]), 4, 7))
        base[:, :, 0] = np.linspace(-1, 1, 4)
        return base

    batch = online.plan(env, online.OnlineConfig(trials=2, tasks=("pick",), splits=("seen",)))[0]
    cfg = online.OnlineConfig(trials=2, max_steps=8, chunk_mode="open-loop", record_actions=True)
    results = [r for _, r in online.rollout_batch(env, chunked, batch, cfg)]
    assert len(calls) == 2  # 8 steps, chunk of 4 executed open loop: 2 queries
    assert [a[0] for a in results[0]["actions"][:4]] == pytest.approx(
        [-1, -1 / 3, 1 / 3, 1], abs=1e-5
    )
    calls.clear()
    cfg = online.OnlineConfig(trials=2, max_steps=8, chunk_mode="ensemble", record_actions=True)
    results = [r for _, r in online.rollout_batch(env, chunked, batch, cfg)]
    assert len(calls) == 8  # asked every step
    # step 1 averages chunk 0's 2nd action (-1/3, age 0) with chunk 1's 1st (-1, age 1)
    w0, w1 = 1.0, np.exp(-0.01)
    expected = (w0 * (-1 / 3) + w1 * (-1.0)) / (w0 + w1)
    assert results[0]["actions"][1][0] == pytest.approx(expected, abs=1e-6)


def test_open_loop_executes_only_the_first_actions_of_a_chunk() -> None:
    env = TabletopEnv()
    calls = []

    def chunked(obs):
        calls.append(len(obs["env_index"]))
        return np.zeros((len(obs["env_index"]), 4, 7))

    batch = online.plan(env, online.OnlineConfig(trials=1, tasks=("pick",), splits=("seen",)))[0]
    cfg = online.OnlineConfig(trials=1, max_steps=6, execute=2)
    results = [r for _, r in online.rollout_batch(env, chunked, batch, cfg)]
    assert len(calls) == 3 and results[0]["steps"] == 6  # asked every 2 steps


def test_answers_are_normalised_to_chunks() -> None:
    single = np.arange(6.0).reshape(2, 3)
    chunk = as_chunk(single, 2, 3)
    assert chunk.shape == (2, 1, 3) and chunk.dtype == np.float64
    np.testing.assert_array_equal(chunk[:, 0], single)
    assert as_chunk([[[0.0] * 3] * 4] * 2, 2, 3).shape == (2, 4, 3)


def test_bad_answers_are_usage_errors() -> None:
    env = TabletopEnv()
    cfg = online.OnlineConfig(trials=1, batch_size=4)
    wrong = lambda obs: np.zeros((len(obs["env_index"]), 3))  # noqa: E731
    with pytest.raises(UsageError, match="needs"):
        list(online.rollout_batch(env, wrong, online.plan(env, cfg)[0], cfg))
    with pytest.raises(UsageError, match="needs"):
        as_chunk(np.zeros((3, 7)), 2, 7)  # a row too many
    with pytest.raises(UsageError, match="NaN"):
        as_chunk(np.full((2, 7), np.nan), 2, 7)
