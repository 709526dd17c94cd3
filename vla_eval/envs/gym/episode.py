"""`EpisodeEnd`: the wrapper that gives every sub-environment exactly one episode per reset.

The `Env` protocol says a finished environment ignores further actions and keeps
reporting done until the next reset, while a Gymnasium vector env resets a finished
sub-environment by itself (and Meta-World refuses to step past its horizon). Wrapped in
`EpisodeEnd`, a sub-environment ends its episode on success, termination, truncation or
the step limit, and from then on answers every step with its last observation and no
reward, without stepping the simulator; the vector env's own automatic reset (made
without a seed) leaves it as it is. Only a reset with a seed starts a new episode.
Imported inside the worker processes; imports gymnasium and numpy.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from vla_eval.envs.gym.observations import truthy


class EpisodeEnd(gymnasium.Wrapper):
    """One episode per seeded reset, ended on success, termination, truncation or `max_steps`.

    Args:
        env: the environment from `gymnasium.make`.
        success_keys: ``info`` keys read for success, the first present one counts.
        max_steps: step limit per episode (None: the environment's own).
    """

    def __init__(self, env: Any, success_keys: tuple[str, ...], max_steps: int | None) -> None:
        super().__init__(env)
        self._success_keys = success_keys
        self._max_steps = max_steps
        self._steps = 0
        self._ended = False
        self._last: tuple[Any, dict[str, Any]] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if seed is None and self._ended and self._last is not None:
            return self._last  # the vector env's automatic reset: the episode stays over
        if seed is not None:
            # Some environments draw from their generator before reseeding it (Meta-World
            # picks its goal that way); seeding it first makes the episode a function of
            # the seed alone, whatever this worker ran before.
            self.env.np_random = np.random.Generator(np.random.PCG64(seed))
        obs, info = self.env.reset(seed=seed, options=options)
        self._steps, self._ended, self._last = 0, False, (obs, info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        if self._ended and self._last is not None:
            obs, info = self._last
            return obs, 0.0, False, False, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        terminated = bool(terminated) or self._succeeded(info)
        truncated = bool(truncated) or (
            self._max_steps is not None and self._steps >= self._max_steps
        )
        self._ended = terminated or truncated
        self._last = (obs, info)
        return obs, reward, terminated, truncated, info

    def _succeeded(self, info: dict[str, Any]) -> bool:
        for key in self._success_keys:
            if key in info:
                return truthy(info[key], key)
        return False
