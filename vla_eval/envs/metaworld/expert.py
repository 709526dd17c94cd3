"""Meta-World's own scripted controllers as a reference policy for `MetaWorldEnv`.

They read the privileged state (the goal included), so they work on ML benchmarks
too. Meta-World is imported when the policy is built; this module needs numpy and
the sibling modules only, never torch or the rollout loop.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from vla_eval.envs.metaworld.env import MetaWorldEnv
from vla_eval.envs.metaworld.tasks import ACTION_DIM
from vla_eval.errors import UsageError


class MetaWorldExpertPolicy:
    """Meta-World's scripted policies behind `vla_eval.online`'s Policy interface.

    Each env gets the hand-written controller of its task class
    (``metaworld.policies.ENV_POLICY_MAP``); they read the privileged state (the
    goal included) from the environment, so they work on ML benchmarks too. They
    succeed in nearly every episode, which makes them the reference to check an
    evaluation pipeline against.

    Args:
        env: the environment the policy acts in.
    """

    def __init__(self, env: MetaWorldEnv) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.env = env
        self._map = ENV_POLICY_MAP
        self._policies: dict[str, Any] = {}

    def _policy(self, env_name: str) -> Any:
        if env_name not in self._policies:
            if env_name not in self._map:
                raise UsageError(f"Meta-World has no scripted policy for {env_name!r}")
            self._policies[env_name] = self._map[env_name]()
        return self._policies[env_name]

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        """Actions (k, 4) for the envs in ``obs["env_index"]`` (all envs if absent)."""
        state = self.env.privileged_state()
        tasks = self.env.current_tasks
        rows = np.asarray(obs.get("env_index", np.arange(len(tasks))))
        actions = np.empty((rows.size, ACTION_DIM))
        with warnings.catch_warnings():
            # The controllers' gains routinely ask for more than 1; the env clips, by design.
            warnings.simplefilter("ignore")
            for k, i in enumerate(rows.tolist()):
                actions[k] = self._policy(tasks[i].spec.env_name).get_action(state[i])
        return np.clip(actions, -1.0, 1.0)
