"""Policy factories the tests name as ``tests.policies.plugins:NAME`` (plug-in specs).

Each has the plug-in signature ``factory(env, **policy_args) -> policy``. The ones that
act well wrap the tabletop world's scripted expert, so their episodes depend only on
(task, split, seed), which is what resume, shards and video replays rely on.
"""

from __future__ import annotations

import time

import numpy as np

from vla_eval.envs.tabletop import ExpertPolicy, TabletopEnv

#: Every ``reset`` call of every `Delayed` policy, in order (the tests read and clear it).
RESETS: list[np.ndarray] = []


class Constant:
    """The same action for every environment at every step (no name, no fingerprint)."""

    def __init__(self, action_dim: int, value: float) -> None:
        self.action_dim, self.value = action_dim, value

    def __call__(self, obs):
        return np.full((len(obs["env_index"]), self.action_dim), self.value)


def constant(env, value=0.0):
    return Constant(env.action_dim, float(value))


class Delayed:
    """The expert after ``delay`` no-op steps per episode: per-environment action queues.

    ``reset(env_indices)`` refills the queues of exactly those environments; an
    environment whose queue is not refilled skips its no-op steps, so its episode is
    ``delay`` steps shorter than it should be.
    """

    name = "delayed"

    def __init__(self, env: TabletopEnv, delay: int) -> None:
        self.inner, self.delay = ExpertPolicy(env), delay
        self.queues: dict[int, list[np.ndarray]] = {}

    def reset(self, env_indices: np.ndarray) -> None:
        RESETS.append(np.array(env_indices, copy=True))
        self.inner.reset(env_indices)
        for i in env_indices.tolist():
            self.queues[i] = [np.zeros(7) for _ in range(self.delay)]

    def __call__(self, obs):
        rows = obs["env_index"]
        waiting = [bool(self.queues.get(i)) for i in rows.tolist()]
        if any(waiting):
            assert all(waiting)  # every episode of a batch starts together
            return np.stack([self.queues[i].pop(0) for i in rows.tolist()])
        return self.inner(obs)


def delayed(env, delay=2):
    return Delayed(env, int(delay))


class Flaky:
    """The expert, raising at its ``fail_at``-th call; its fingerprint ignores ``fail_at``."""

    name = "flaky"

    def __init__(self, env: TabletopEnv, fail_at: int | None, sleep: float) -> None:
        self.inner, self.fail_at, self.sleep, self.calls = ExpertPolicy(env), fail_at, sleep, 0

    def fingerprint(self) -> str:
        return "flaky-expert/1"

    def reset(self, env_indices):
        self.inner.reset(env_indices)

    def __call__(self, obs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError(f"deliberate failure at call {self.calls}")
        time.sleep(self.sleep)
        return self.inner(obs)


def flaky(env, fail_at=None, sleep=0.0):
    return Flaky(env, fail_at, float(sleep))


class Picky:
    """Acts like the expert in episodes whose gripper starts left of x = 0.5, else idles.

    The choice is made from each episode's first observation and kept per environment,
    so an episode's outcome depends only on the episode: successes and failures both.
    """

    name = "picky"

    def __init__(self, env: TabletopEnv) -> None:
        self.inner = ExpertPolicy(env)
        self.acts: dict[int, bool] = {}

    def reset(self, env_indices):
        self.inner.reset(env_indices)
        for i in env_indices.tolist():
            self.acts.pop(i, None)

    def __call__(self, obs):
        rows = obs["env_index"].tolist()
        for row, x in zip(rows, obs["state"][:, 0].tolist(), strict=True):
            self.acts.setdefault(row, x < 0.5)
        act = np.array([self.acts[r] for r in rows])
        return np.where(act[:, None], self.inner(obs), 0.0)


def picky(env):
    return Picky(env)


class FirstRowIdles:
    """The expert, except that batch position 0 idles: outcomes depend on the batch."""

    name = "first-row-idles"

    def __init__(self, env: TabletopEnv) -> None:
        self.inner = ExpertPolicy(env)

    def reset(self, env_indices):
        self.inner.reset(env_indices)

    def __call__(self, obs):
        return np.where((obs["env_index"] == 0)[:, None], 0.0, self.inner(obs))


def first_row_idles(env):
    return FirstRowIdles(env)


def broken(env):
    raise ValueError("no weights here")


def wrong_shape(env):
    return lambda obs: np.zeros((len(obs["env_index"]), env.action_dim + 1))


def chunk_of_nan(env):
    return lambda obs: np.full((len(obs["env_index"]), 3, env.action_dim), np.nan)


def not_a_policy(env):
    return 42


def needs_weights(env, weights):
    return Constant(env.action_dim, 0.0)


NOT_CALLABLE = "a string"
