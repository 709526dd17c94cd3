"""Shared fixtures of the Meta-World adapter's tests: one MT10 environment, an expert rollout."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def env():
    """One MT10 environment for the session (building its goals costs seconds)."""
    pytest.importorskip(
        "metaworld", reason="Meta-World is not installed (pip install 'vla-eval[sim]')"
    )
    from vla_eval.envs.metaworld import MetaWorldEnv

    with MetaWorldEnv("MT10", progress=False) as e:
        yield e


def _rollout(env, seeds, tasks, policy=None):
    """Run one batch to the end with the expert; returns (success, steps, states)."""
    from vla_eval.envs.metaworld import MetaWorldExpertPolicy

    policy = policy or MetaWorldExpertPolicy(env)
    obs = env.reset(seeds, tasks)
    states = [obs["state"]]
    done = np.zeros(len(seeds), bool)
    while not done.all():
        obs, _, done, info = env.step(policy({"state": obs["state"]}))
        states.append(obs["state"])
    return info["success"], info["steps"], np.stack(states, 1)


@pytest.fixture(scope="session")
def rollout():
    """``rollout(env, seeds, tasks, policy=None) -> (success, steps, states)``."""
    return _rollout
