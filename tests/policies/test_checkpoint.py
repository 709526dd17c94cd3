"""The TinyVLA checkpoint policy: actions for the observations it is given, clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vla_eval.envs.tabletop import TabletopEnv
from vla_eval.errors import UsageError
from vla_eval.policies.checkpoint import CheckpointPolicy


@pytest.fixture(scope="module")
def policy(smoke_checkpoint: Path) -> CheckpointPolicy:
    return CheckpointPolicy(smoke_checkpoint)


def test_actions_are_chunks_in_range(policy: CheckpointPolicy) -> None:
    obs = TabletopEnv().reset([0, 1, 2], ["pick/seen", "place/unseen", "pour/seen"])
    actions = np.asarray(policy(obs))
    assert actions.shape[0] == 3 and actions.shape[2] == policy.action_dim == 7
    assert np.isfinite(actions).all() and np.abs(actions).max() <= 1.0 + 1e-6
    assert policy.step == 24


def test_refuses_observations_it_cannot_read(policy: CheckpointPolicy) -> None:
    obs = TabletopEnv().reset([0], "pick/seen")
    with pytest.raises(UsageError, match="needs image observations"):
        policy({"state": obs["state"], "instruction": obs["instruction"], "env_index": [0]})
    with pytest.raises(UsageError, match="5-D state"):
        policy({**obs, "state": np.zeros((1, 3), np.float32)})
