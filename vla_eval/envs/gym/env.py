"""`GymEnv`: any registered Gymnasium environment behind the vectorised `Env` protocol.

Each split of a `GymEnvConfig` is one task; a batch's episodes of one split run in one
Gymnasium vector env (`gymnasium.vector.SyncVectorEnv` for one worker,
`AsyncVectorEnv` subprocesses otherwise, at most ``workers`` stepping at once), kept
and reused for later batches of the same split and size, since starting workers is
costly. Episode ``seed`` of a split runs ``reset(seed=seeds_from + seed)``, so the same
(task, seed) gives the same episode whatever else is in the batch. Gymnasium is imported
when an environment is built (the optional extra ``gym``); importing this module needs
numpy and the package's own modules only.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from vla_eval.envs.base import Obs, Task, resolve_tasks
from vla_eval.envs.gym.config import GymEnvConfig
from vla_eval.envs.gym.observations import (
    ObsLayout,
    flatten,
    merge_rows,
    normalise,
    read_layout,
    truthy,
)
from vla_eval.envs.gym.registry import (
    EnvMaker,
    check_registered,
    distribution_of,
    import_gymnasium,
    package_version,
    registering_package,
)
from vla_eval.errors import UsageError

DEFAULT_SUCCESS_KEYS = ("is_success", "success")
INSTRUCTION_ATTRIBUTES = ("task_description", "instruction")


class GymEnv:
    """N episodes of a Gymnasium environment stepped together.

    Example (needs the ``gym`` extra)::

        env = GymEnv(config_from_id("gym:gym_pusht/PushT-v0", {}, None, 300))
        obs = env.reset([0, 1], env.tasks[0])
        obs, reward, done, info = env.step(np.full((2, 2), 256.0))

    Args:
        config: the environment, its splits and how success is read.
        workers: 1 steps the episodes in this process; more runs each episode in a
            subprocess, at most ``workers`` of them stepping at once.
        render: make the environments with ``render_mode="rgb_array"`` so `render` works.
    """

    def __init__(self, config: GymEnvConfig, *, workers: int = 1, render: bool = False) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise UsageError(f"--workers must be a whole number of at least 1, got {workers!r}")
        self._gym = import_gymnasium()
        spec = check_registered(config.env_id, config.module)
        self.config = config
        self.workers = workers
        self.render_enabled = render
        self.name = f"gym:{config.env_id}"
        self._success_keys = (config.success_key,) if config.success_key else DEFAULT_SUCCESS_KEYS
        name = config.task_name
        self._tasks = tuple(Task(name, name, split, s) for split, s in config.splits.items())
        self._by_key = {t.key: t for t in self._tasks}
        probe = self._maker(self._tasks[0])()
        try:
            self.action_dim = _action_dim(probe.action_space, self.name)
            self._action_dtype = probe.action_space.dtype
            self._instruction_attr = _instruction_attribute(probe)
            self.metadata = dict(probe.metadata)
        finally:
            probe.close()
        distribution = distribution_of(registering_package(spec))
        self.packages = tuple(p for p in (distribution, "gymnasium", "numpy") if p)
        self.version = (
            f"{package_version(distribution)}+gymnasium-{self._gym.__version__}+{_digest(config)}"
        )
        self._pool: dict[tuple[str, int], Any] = {}
        self._groups: list[tuple[Any, np.ndarray, ObsLayout]] = []
        self._done = np.zeros(0, bool)
        self._checked = False
        self._finalizer = weakref.finalize(self, _close_all, self._pool)

    @property
    def tasks(self) -> tuple[Task, ...]:
        return self._tasks

    @property
    def preferred_batch_size(self) -> int:
        """Episodes per batch that keep every worker busy: ``workers``."""
        return self.workers

    def _maker(self, task: Task) -> EnvMaker:
        return EnvMaker(
            self.config.env_id,
            self.config.module,
            task.spec.args,
            self.render_enabled,
            self._success_keys,
            task.spec.max_steps,
        )

    def _vector(self, task: Task, n: int) -> tuple[Any, ObsLayout]:
        """The vector env of n sub-environments for a split, built once and reused."""
        key = (task.split, n)
        if key not in self._pool:
            if self.render_enabled:
                # MuJoCo picks its OpenGL backend when it first renders; without a display
                # only EGL (or OSMesa) works, and the user's own choice is kept
                os.environ.setdefault("MUJOCO_GL", "egl")
            makers = [self._maker(task)] * n
            mode = self._gym.vector.AutoresetMode.NEXT_STEP
            if self.workers == 1:
                self._pool[key] = self._gym.vector.SyncVectorEnv(makers, autoreset_mode=mode)
            else:
                vector = self._gym.vector.AsyncVectorEnv
                # more episodes than workers: cap how many step at once (newer Gymnasium can)
                can_cap = "max_concurrency" in inspect.signature(vector).parameters
                limit = {"max_concurrency": self.workers} if n > self.workers and can_cap else {}
                self._pool[key] = vector(makers, autoreset_mode=mode, **limit)
        vec = self._pool[key]
        return vec, read_layout(vec.single_observation_space)

    def reset(self, seeds: Sequence[int], tasks: Task | str | Sequence[Task | str]) -> Obs:
        """Start ``len(seeds)`` episodes; env i runs ``tasks[i]`` (or one task for all)."""
        seeds = [_seed(s) for s in seeds]
        if not seeds:
            raise UsageError("reset needs at least one seed")
        resolved = resolve_tasks(self._by_key, tasks, len(seeds), self.name)
        self._groups, parts, instructions = [], [], [None] * len(seeds)
        for task in dict.fromkeys(resolved):
            rows = np.array([i for i, t in enumerate(resolved) if t == task])
            vec, layout = self._vector(task, len(rows))
            obs, _ = vec.reset(seed=[task.spec.seeds_from + seeds[i] for i in rows])
            self._groups.append((vec, rows, layout))
            parts.append((rows, flatten(obs)))
            for row, text in zip(rows, self._instructions(vec, len(rows)), strict=True):
                instructions[row] = text
        self._done = np.zeros(len(seeds), bool)
        self._checked = False
        obs = self._observe(parts)
        if "instruction" not in obs and instructions[0] is not None:
            obs["instruction"] = instructions
        return obs

    def _instructions(self, vec: Any, n: int) -> list[str | None]:
        if self._instruction_attr is not None:
            return [str(t) for t in vec.get_attr(self._instruction_attr)]
        return [self.config.instruction] * n

    def _observe(self, parts: list[tuple[np.ndarray, dict[str, Any]]]) -> Obs:
        try:
            flat = merge_rows(parts, len(self._done))
        except (KeyError, ValueError) as exc:
            raise UsageError(
                f"{self.name}: the splits in this batch give observations of different "
                f"keys or shapes ({exc}); run them in separate batches"
            ) from None
        return normalise(flat, self._groups[0][2])

    def step(self, actions: Any) -> tuple[Obs, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply actions (N, action_dim); return ``(obs, reward (N,), done (N,), info)``.

        ``info["success"]`` (N,) says which episodes succeeded at this step. A finished
        episode ignores its action, gets no reward and stays done.
        """
        if not self._groups:
            raise UsageError(f"{self.name}: call reset before step")
        n = len(self._done)
        actions = np.asarray(actions)
        if actions.shape != (n, self.action_dim):
            raise UsageError(
                f"{self.name}: actions must have shape (N, action_dim) = ({n}, "
                f"{self.action_dim}), got {actions.shape}"
            )
        actions = actions.astype(self._action_dtype, copy=False)
        for vec, rows, _ in self._groups:
            if hasattr(vec, "step_async"):  # all workers step at once, across splits too
                vec.step_async(actions[rows])
        results = [
            vec.step_wait() if hasattr(vec, "step_async") else vec.step(actions[rows])
            for vec, rows, _ in self._groups
        ]
        reward = np.zeros(n)
        ended = np.zeros(n, bool)
        success = np.zeros(n, bool)
        parts = []
        for (_, rows, _), (obs, rew, term, trunc, infos) in zip(self._groups, results, strict=True):
            parts.append((rows, flatten(obs)))
            reward[rows] = rew
            ended[rows] = np.asarray(term, bool) | np.asarray(trunc, bool)
            success[rows] = self._success(infos, len(rows))
        live = ~self._done
        self._done = self._done | ended
        return (
            self._observe(parts),
            np.where(live, reward, 0.0),
            self._done.copy(),
            {"success": success & live},
        )

    def _success(self, infos: dict[str, Any], n: int) -> np.ndarray:
        """Per sub-environment: did its ``info`` say success (absent counts as no)."""
        if not self._checked:
            self._check_success_key(infos)
        for key in self._success_keys:
            if key in infos:
                mask = np.asarray(infos.get(f"_{key}", np.ones(n, bool)), bool)
                values = infos[key]
                return np.array(
                    [bool(m) and truthy(v, key) for m, v in zip(mask, values, strict=True)]
                )
        return np.zeros(n, bool)

    def _check_success_key(self, infos: dict[str, Any]) -> None:
        self._checked = True
        if any(k in infos for k in self._success_keys):
            return
        seen = ", ".join(sorted(k for k in infos if not k.startswith("_"))) or "none"
        if self.config.success_key:
            raise UsageError(
                f"success key {self.config.success_key!r} never appears in the info of "
                f"{self.name}; its keys: {seen}"
            )
        raise UsageError(
            f"{self.name} reports neither is_success nor success in its info (keys: {seen}); "
            "name the key with --success-key"
        )

    def render(self) -> np.ndarray:
        """The current frame of every environment: uint8 (N, H, W, 3)."""
        if not self._groups:
            raise UsageError(f"{self.name}: call reset before render")
        frames: list[Any] = [None] * len(self._done)
        for vec, rows, _ in self._groups:
            if vec.render_mode != "rgb_array":
                raise UsageError(
                    f"{self.name}: build the environment with render=True (or call "
                    "enable_rendering() before reset) to render"
                )
            try:
                rendered = vec.render()
            except Exception as exc:  # the environment's renderer (OpenGL, a display)
                raise UsageError(
                    f"{self.name} failed to render: {type(exc).__name__}: {exc} (MuJoCo "
                    "environments without a display need MUJOCO_GL=egl or MUJOCO_GL=osmesa)"
                ) from exc
            for row, frame in zip(rows, rendered, strict=True):
                frames[row] = frame
        try:
            return np.stack(frames).astype(np.uint8, copy=False)
        except ValueError:
            raise UsageError(f"{self.name}: the splits render frames of different sizes") from None

    def enable_rendering(self) -> None:
        """Make the environments renderable from the next `reset` on (rebuilt once)."""
        if not self.render_enabled:
            self.render_enabled = True
            _close_all(self._pool)

    def close(self) -> None:
        """Close every vector env (and stop its workers)."""
        self._finalizer()

    def __enter__(self) -> GymEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_all(pool: dict[tuple[str, int], Any]) -> None:
    for vec in pool.values():
        vec.close()
    pool.clear()


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise UsageError(f"seeds must be whole numbers >= 0, got {value!r}")
    return int(value)


def _action_dim(space: Any, name: str) -> int:
    shape = getattr(space, "shape", None)
    if not hasattr(space, "low") or shape is None or len(shape) != 1:
        raise UsageError(f"{name}: only flat Box action spaces are supported, got {space}")
    return int(shape[0])


def _instruction_attribute(env: Any) -> str | None:
    """The environment attribute that holds its task description, if it has one."""
    for name in INSTRUCTION_ATTRIBUTES:
        try:
            value = env.get_wrapper_attr(name)
        except AttributeError:
            continue
        if isinstance(value, str):
            return name
    return None


def _digest(config: GymEnvConfig) -> str:
    """A short hash of everything in the config that changes episodes or what the policy reads."""
    blob = json.dumps(
        {
            "id": config.env_id,
            "splits": {k: [s.args, s.seeds_from, s.max_steps] for k, s in config.splits.items()},
            "success_key": config.success_key,
            "instruction": config.instruction,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
