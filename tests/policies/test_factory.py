"""`make_policy`: the expert, a checkpoint, and the errors on the way."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from vla_eval.envs.tabletop import ExpertPolicy, TabletopEnv
from vla_eval.errors import UsageError
from vla_eval.policies import make_policy
from vla_eval.policies.expert import make_expert


class FourDimEnv(TabletopEnv):
    """The tabletop world claiming 4-D actions, to meet a checkpoint that does not fit."""

    name = "four"
    action_dim = 4


def test_expert_spec() -> None:
    env = TabletopEnv()
    named = make_policy("expert", env)
    assert isinstance(named.policy, ExpertPolicy) and named.policy.env is env
    assert (named.name, named.policy_id, named.path) == ("expert", "expert:tabletop", None)
    # The id records the name the environment was made from.
    assert make_policy("expert", env, env_name="other").policy_id == "expert:other"


def test_an_environment_without_an_expert() -> None:
    with pytest.raises(UsageError, match="no scripted expert"):
        make_expert(FourDimEnv())


def test_checkpoint_spec(smoke_checkpoint: Path) -> None:
    named = make_policy(str(smoke_checkpoint), TabletopEnv())
    assert named.name == smoke_checkpoint.stem and named.path == smoke_checkpoint
    digest = hashlib.sha256(smoke_checkpoint.read_bytes()).hexdigest()
    assert named.policy_id == digest[:16]
    obs = TabletopEnv().reset([0, 1], "pick/seen")
    actions = np.asarray(named.policy(obs))
    assert actions.ndim == 3 and actions.shape[0] == 2 and actions.shape[2] == 7


def test_checkpoint_errors(smoke_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such checkpoint file"):
        make_policy(str(tmp_path / "none.pt"), TabletopEnv())
    with pytest.raises(UsageError, match="does not fit this environment"):
        make_policy(str(smoke_checkpoint), FourDimEnv())
