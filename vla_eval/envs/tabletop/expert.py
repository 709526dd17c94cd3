"""The tabletop world's scripted expert: a vectorised policy that reads the privileged scene.

`ScriptedExpert` solves every task and has knobs (`DemoQuality`) that degrade
demonstrations: noise, idle pauses, failures, zigzags. `ExpertPolicy` puts it behind
the rollout policy interface. This module depends on numpy and the tabletop world
only (never on torch or the rollout loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vla_eval.envs.base import Obs
from vla_eval.envs.tabletop.env import TabletopEnv, check_seeds
from vla_eval.envs.tabletop.world import ACTION_DIM, MAX_STEPS, MOVE_STEP, TILT_STEP
from vla_eval.errors import UsageError


@dataclass(frozen=True)
class DemoQuality:
    """How demonstrations go wrong, to exercise quality filtering.

    Attributes:
        noise: standard deviation of Gaussian noise added to dx and dy every step
            (action units; 0.1 moves the gripper by about 0.008 table units).
        idle: probability that a demonstration pauses for 5-9 steps early on.
        failed: probability that a demonstration goes for the wrong object (the
            distractor) and so fails.
        jerky: probability that a demonstration zigzags (alternating sideways
            offsets of 0.6 times the move, on every moving step).
    """

    noise: float = 0.0
    idle: float = 0.0
    failed: float = 0.0
    jerky: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.noise) and 0.0 <= self.noise <= 1.0):
            raise UsageError(f"demo noise must be in [0, 1], got {self.noise}")
        for name in ("idle", "failed", "jerky"):
            p = getattr(self, name)
            if not (np.isfinite(p) and 0.0 <= p <= 1.0):
                raise UsageError(f"demo {name} probability must be in [0, 1], got {p}")


ARRIVE_TOLERANCE = 0.02
_JERK_OFFSET = 0.6  # < 1, so the sideways error shrinks each step
_NOISE_STEPS = max(MAX_STEPS.values())


@dataclass
class ScriptedExpert:
    """A vectorised scripted policy that reads the privileged scene and solves every task.

    It moves in straight lines at full speed to the object with the gripper open
    (dropping anything else it holds first), closes, carries it to the bowl or base block in a
    straight line and opens, or for *pour* tilts the wrist over the bowl. It is
    reactive (it recomputes from the scene each step), so noise only costs steps.

    >>> env = TabletopEnv()
    >>> _ = env.reset([3, 4], ["place/seen", "pour/unseen"])
    >>> expert = ScriptedExpert()
    >>> expert.reset(env, [3, 4])
    >>> done = np.zeros(2, bool)
    >>> while not done.all():
    ...     _, _, done, info = env.step(expert.act(env))
    >>> info["success"].tolist()
    [True, True]
    """

    quality: DemoQuality = field(default_factory=DemoQuality)

    def reset(self, env: TabletopEnv, seeds: Sequence[int] | np.ndarray) -> None:
        """Draw each demonstration's defects from its seed (independent of the env's draws)."""
        seed_arr = check_seeds(seeds)
        n = env.scene.n
        if seed_arr.size != n:
            raise UsageError(f"expert got {seed_arr.size} seeds for {n} environments")
        q = self.quality
        self.failed = np.zeros(n, bool)
        self.idle = np.zeros(n, bool)
        self.jerky = np.zeros(n, bool)
        self._idle_start = np.zeros(n, np.int32)
        self._idle_len = np.zeros(n, np.int32)
        self._noise = np.zeros((n, _NOISE_STEPS + 1, 2))
        for i, seed in enumerate(seed_arr.tolist()):
            rng = np.random.default_rng([seed, 0x5EED])
            self.failed[i], self.idle[i], self.jerky[i] = rng.random(3) < (
                q.failed,
                q.idle,
                q.jerky,
            )
            self._idle_start[i] = rng.integers(1, 5)
            self._idle_len[i] = rng.integers(5, 10)
            self._noise[i] = rng.normal(0.0, 1.0, (_NOISE_STEPS + 1, 2)) * q.noise
        family = env.family_index
        # Slot 0 is always the object to move and slot 1 the reference; a failing
        # demonstration swaps in the distractor in slot 2.
        self._manip = np.where(self.failed & (family == 0), 2, 0)
        self._ref = np.where(self.failed & (family != 0), 2, 1)

    def act(self, env: TabletopEnv) -> np.ndarray:
        """Actions (N, 7) for the current scene."""
        scene = env.scene
        n = scene.n
        rows = np.arange(n)
        family = env.family_index
        t = np.minimum(env.steps, _NOISE_STEPS)
        held = scene.held
        holding_right = held == self._manip
        holding_wrong = (held >= 0) & ~holding_right
        goal = np.where(holding_right, self._ref, self._manip)
        delta = scene.pos[rows, goal] - scene.grip
        arrived = np.linalg.norm(delta, axis=1) < ARRIVE_TOLERANCE
        move = delta / MOVE_STEP
        move /= np.maximum(1.0, np.abs(move).max(axis=1))[:, None]

        grip_cmd = np.where(scene.closed, 1.0, -1.0)
        motion = np.zeros((n, 2))
        tilt = np.zeros(n)
        approach = held < 0
        carry = holding_right & (family != 0)
        grip_cmd = np.where(holding_wrong | approach, -1.0, grip_cmd)
        go = (approach | carry) & ~arrived
        motion[go] = move[go]
        tilt = np.where(approach, -np.clip(scene.tilt / TILT_STEP, 0.0, 1.0), tilt)
        grip_cmd = np.where(approach & arrived, 1.0, grip_cmd)
        drop = carry & arrived & (family != 3)
        grip_cmd = np.where(drop, -1.0, grip_cmd)
        tilt = np.where(carry & arrived & (family == 3), 1.0, tilt)

        idle = self.idle & (t >= self._idle_start) & (t < self._idle_start + self._idle_len)
        motion[idle] = 0.0
        tilt[idle] = 0.0
        grip_cmd = np.where(idle, np.where(scene.closed, 1.0, -1.0), grip_cmd)

        speed = np.linalg.norm(motion, axis=1)
        zig = self.jerky & (speed > 0.3)
        if zig.any():
            # Sideways offsets proportional to the speed turn every move by about 60
            # degrees yet keep the progress towards the goal, so zigzag demos still succeed.
            side = np.stack([-motion[:, 1], motion[:, 0]], axis=1)
            sign = np.where(t % 2 == 0, 1.0, -1.0)
            motion[zig] += _JERK_OFFSET * sign[zig, None] * side[zig]
        motion += self._noise[rows, t]

        actions = np.zeros((n, ACTION_DIM))
        actions[:, 0:2] = motion
        actions[:, 5] = tilt
        actions[:, 6] = grip_cmd
        return np.clip(actions, -1.0, 1.0)


class ExpertPolicy:
    """The scripted expert behind the rollout `Policy` interface (a reference policy).

    It reads the environment's privileged scene, so it is bound to one `TabletopEnv`;
    `vla_eval.online` calls ``reset(env_indices)`` after each batch's reset and passes
    ``obs["env_index"]``, the batch rows it wants actions for.
    """

    def __init__(self, env: TabletopEnv, quality: DemoQuality | None = None) -> None:
        self.env = env
        self.expert = ScriptedExpert(quality or DemoQuality())

    def reset(self, env_indices: np.ndarray) -> None:
        self.expert.reset(self.env, self.env._seeds)

    def __call__(self, obs: Obs) -> np.ndarray:
        return self.expert.act(self.env)[np.asarray(obs["env_index"])]
