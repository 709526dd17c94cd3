"""`MetaWorldEnv`: N Meta-World (v3, gymnasium API) simulators behind the vectorised `Env` protocol.

An episode is fixed by its (task, seed): the seed picks one of the split's 50 goal
variants and seeds the simulator, so every policy meets the same episodes. Meta-World,
MuJoCo and gymnasium are imported only when an environment is built (the optional
extra ``sim``); importing this module needs numpy, `envs.base`, `errors` and the
sibling modules only. It never imports torch.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from vla_eval.envs.base import Obs, Task, lookup_task, resolve_tasks
from vla_eval.envs.metaworld.goals import announce, benchmark_goals, heldout_goals
from vla_eval.envs.metaworld.tasks import (
    ACTION_DIM,
    BENCHMARKS,
    CAMERAS,
    GL_BACKENDS,
    GOALS_PER_TASK,
    HELDOUT_SEED_OFFSET,
    INSTRUCTIONS,
    MAX_STEPS,
    PACKAGES,
    STATE_DIM,
    MetaWorldSpec,
    check_seeds,
    class_names,
    family_of,
    import_metaworld,
    metaworld_version,
)
from vla_eval.errors import UsageError


class MetaWorldEnv:
    """N Meta-World episodes stepped together (a loop over simulator instances).

    Instances are kept per task class and reused across resets (building one costs
    ~0.3 s); an episode still depends only on its (task, seed): resetting restores
    the full simulator state, so the same pair gives the same episode in any batch.

    An episode ends when it succeeds (Meta-World's own ``info["success"]``, as in its
    evaluation, unless ``terminate_on_success=False``) or after ``max_steps`` steps.

    Example (needs the ``sim`` extra; building the MT10 goals takes a few seconds)::

        env = MetaWorldEnv("MT10")
        obs = env.reset([0, 1], "reach-v3/unseen")
        obs, reward, done, info = env.step(np.zeros((2, 4)))

    Args:
        benchmark: one of `BENCHMARKS`.
        benchmark_seed: the seed Meta-World's benchmark constructor draws goals with;
            use the seed the policy was trained with so *seen* means seen.
        max_steps: step limit per episode (Meta-World's horizon is 500).
        terminate_on_success: end an episode at its first successful step.
        images: also observe rendered RGB images (needs an OpenGL backend, see
            `docs/metaworld.md`); off by default, state observations only.
        camera: which of `CAMERAS` renders the images.
        image_size: side of the square images in pixels.
        flip_image: turn images upright (Meta-World's cameras render upside down).
        progress: say on stderr when goal positions are being generated.
    """

    name = "metaworld"
    #: Distinct episodes per task and split (seeds 0..49): more trials would repeat them.
    max_seeds = GOALS_PER_TASK
    action_dim = ACTION_DIM
    packages = PACKAGES

    def __init__(
        self,
        benchmark: str = "MT10",
        *,
        benchmark_seed: int = 0,
        max_steps: int = MAX_STEPS,
        terminate_on_success: bool = True,
        images: bool = False,
        camera: str = "corner",
        image_size: int = 64,
        flip_image: bool = True,
        progress: bool = True,
    ) -> None:
        _check_options(benchmark, benchmark_seed, max_steps, images, camera, image_size)
        self._mw = import_metaworld()
        self.metaworld_version = metaworld_version()
        self.benchmark = benchmark
        self.benchmark_seed = benchmark_seed
        self.max_steps = max_steps
        self.terminate_on_success = terminate_on_success
        self.images = images
        self.camera = camera
        self.image_size = image_size
        self.flip_image = flip_image
        self.progress = progress
        # Everything that changes episodes is in the version, so `online --resume` never
        # pools episodes of different settings; it starts with Meta-World's own version.
        self.version = (
            f"{self.metaworld_version}+{benchmark}-seed{benchmark_seed}-steps{max_steps}"
            + ("" if terminate_on_success else "-noterm")
            + (f"-{camera}{image_size}" + ("" if flip_image else "raw") if images else "")
        )

        source = _goal_sources(benchmark, benchmark_seed)
        self._classes = class_names(benchmark)
        self._tasks = tuple(
            Task(
                name,
                family_of(name),
                split,
                MetaWorldSpec(name, benchmark, source[split], max_steps),
            )
            for split in ("seen", "unseen")
            for name in self._classes[split]
        )
        self._by_key = {t.key: t for t in self._tasks}
        self._pool: dict[str, list[Any]] = {}
        self._slots: list[Any] = []
        # Close the simulators (and their GL contexts) while the interpreter is still
        # whole; at shutdown OpenGL's modules may be gone and the cleanup would fail.
        self._finalizer = weakref.finalize(self, _close_all, self._pool)

    # -- tasks -------------------------------------------------------------------

    @property
    def tasks(self) -> tuple[Task, ...]:
        return self._tasks

    def task(self, key: str) -> Task:
        """The task named ``name/split`` (or just the name, meaning the seen split)."""
        return lookup_task(self._by_key, key, self.benchmark)

    def _resolve_tasks(self, tasks: Task | str | Sequence[Task | str], n: int) -> list[Task]:
        return resolve_tasks(self._by_key, tasks, n, self.benchmark)

    def goals(self, task: Task | str) -> list[Any]:
        """The split's 50 goal variants of a task (``metaworld.Task`` records); seed i runs the i-th."""
        task = self._resolve_tasks(task, 1)[0]
        heldout = self.benchmark.startswith("MT") and task.split == "unseen"
        self._announce("unseen" if heldout else "benchmark")
        if heldout:
            return heldout_goals(task.spec.env_name, self.benchmark_seed)
        return benchmark_goals(self.benchmark, self.benchmark_seed)[task.split][task.spec.env_name]

    def _announce(self, what: str) -> None:
        if self.progress:
            announce(what, self.benchmark, self.benchmark_seed)

    # -- stepping ----------------------------------------------------------------

    def _instance(self, env_name: str, k: int) -> Any:
        """The k-th simulator of a task class, built on first use."""
        pool = self._pool.setdefault(env_name, [])
        while len(pool) <= k:
            cls = self._mw.env_dict.ALL_V3_ENVIRONMENTS[env_name]
            if self.images:
                env = cls(
                    render_mode="rgb_array",
                    camera_name=self.camera,
                    width=self.image_size,
                    height=self.image_size,
                )
            else:
                env = cls()
            env.max_path_length = self.max_steps  # else Meta-World refuses steps past 500
            pool.append(env)
        return pool[k]

    def _render(self, i: int) -> None:
        try:
            frame = self._slots[i].render()
        except Exception as exc:  # any GL failure; re-raised with what to do about it
            raise UsageError(
                f"Meta-World cannot render images here ({type(exc).__name__}: {exc}); rendering "
                "needs an OpenGL backend: set MUJOCO_GL=egl (GPU or Mesa EGL) or MUJOCO_GL=osmesa "
                "before starting Python, or use state observations (the default)"
            ) from exc
        self._images[i] = frame[::-1] if self.flip_image else frame

    def reset(
        self, seeds: Sequence[int] | np.ndarray, tasks: Task | str | Sequence[Task | str]
    ) -> Obs:
        """Start one episode per seed; ``tasks`` is one task (or ``"name/split"``) or one per seed.

        Seed s runs the s-th goal variant of the task's split (0 <= s < 50) and seeds
        the simulator with s.
        """
        seed_arr = check_seeds(seeds)
        n = seed_arr.size
        task_list = self._resolve_tasks(tasks, n)
        used: dict[str, int] = {}
        slots = []
        for task in task_list:
            name = task.spec.env_name
            slots.append(self._instance(name, used.get(name, 0)))
            used[name] = used.get(name, 0) + 1
        self._slots = slots
        self._task_list = task_list
        self._seeds = seed_arr
        self._raw = np.zeros((n, STATE_DIM))
        if self.images:
            self._images = np.zeros((n, self.image_size, self.image_size, 3), np.uint8)
        for i, (env, task, seed) in enumerate(
            zip(slots, task_list, seed_arr.tolist(), strict=True)
        ):
            env.set_task(self.goals(task)[seed])
            env.seed(seed)
            self._raw[i], _ = env.reset()
            if self.images:
                self._render(i)
        self._instructions = [INSTRUCTIONS[family_of(t.spec.env_name)] for t in task_list]
        self._t = np.zeros(n, np.int32)
        self._done = np.zeros(n, bool)
        self._success = np.zeros(n, bool)
        return self._observe()

    def _check_reset(self) -> None:
        if not self._slots:
            raise UsageError("call reset(seeds, tasks) before stepping the environment")

    def _observe(self) -> Obs:
        obs: Obs = {"state": self._raw.astype(np.float32), "instruction": list(self._instructions)}
        if self.images:
            obs["image"] = self._images.copy()
        return obs

    def step(self, actions: np.ndarray) -> tuple[Obs, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply (N, 4) actions in [-1, 1] (values outside are clipped, as Meta-World does).

        Returns:
            ``(obs, reward, done, info)``: reward (N,) float32 is Meta-World's shaped
            reward (0 for finished episodes); done (N,) bool; info has ``success``
            (N,) bool (the episode has succeeded at some step, Meta-World's evaluation
            criterion), ``timeout`` (N,) bool and ``steps`` (N,) int32.
        """
        self._check_reset()
        n = len(self._slots)
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (n, ACTION_DIM):
            raise UsageError(f"actions must have shape ({n}, {ACTION_DIM}), got {a.shape}")
        if not np.isfinite(a).all():
            raise UsageError("actions contain NaN or infinity")
        a = np.clip(a, -1.0, 1.0)
        live = ~self._done
        reward = np.zeros(n, np.float32)
        for i in np.flatnonzero(live):
            raw, r, _terminated, _truncated, info = self._slots[i].step(a[i])
            self._raw[i] = raw
            reward[i] = r
            self._success[i] |= bool(info["success"])
            if self.images:
                self._render(i)
        self._t[live] += 1
        timeout = live & ~self._success & (self._t >= self.max_steps)
        ended = self._t >= self.max_steps
        if self.terminate_on_success:
            ended = ended | self._success
        self._done |= live & ended
        info_out = {"success": self._success.copy(), "timeout": timeout, "steps": self._t.copy()}
        return self._observe(), reward, self._done.copy(), info_out

    # -- read-only views for reference policies and tests ------------------------

    @property
    def current_tasks(self) -> list[Task]:
        """The task each env runs."""
        self._check_reset()
        return list(self._task_list)

    @property
    def steps(self) -> np.ndarray:
        """(N,) steps taken so far in each episode."""
        self._check_reset()
        return self._t.copy()

    def privileged_state(self) -> np.ndarray:
        """(N, 39) float64 observations with the true goal position in the last 3 entries.

        ML benchmarks hide the goal from the observation; a scripted expert needs it.
        A policy under evaluation must use the observation instead.
        """
        self._check_reset()
        full = self._raw.copy()
        for i, env in enumerate(self._slots):
            full[i, -3:] = env._target_pos  # Meta-World keeps no public accessor for it
        return full

    def close(self) -> None:
        """Free the simulators (and rendering contexts); the env can be used again after."""
        _close_all(self._pool)
        self._slots = []

    def __enter__(self) -> MetaWorldEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_all(pool: dict[str, list[Any]]) -> None:
    for envs in pool.values():
        for env in envs:
            env.close()
    pool.clear()


def _check_options(
    benchmark: str,
    benchmark_seed: int,
    max_steps: int,
    images: bool,
    camera: str,
    image_size: int,
) -> None:
    """Refuse a setting `MetaWorldEnv` cannot run, before any simulator is built."""
    if benchmark not in BENCHMARKS:
        raise UsageError(
            f"unknown Meta-World benchmark {benchmark!r}; use one of {', '.join(BENCHMARKS)}"
        )
    if (
        isinstance(benchmark_seed, bool)
        or not isinstance(benchmark_seed, int)
        or not 0 <= benchmark_seed < 2**20
    ):
        raise UsageError(f"benchmark_seed must be an integer in [0, 2**20), got {benchmark_seed!r}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise UsageError(f"max_steps must be a positive integer, got {max_steps!r}")
    if images:
        if camera not in CAMERAS:
            raise UsageError(
                f"unknown Meta-World camera {camera!r}; use one of {', '.join(CAMERAS)}"
            )
        if (
            isinstance(image_size, bool)
            or not isinstance(image_size, int)
            or not 8 <= image_size <= 1024
        ):
            raise UsageError(f"image_size must be an integer in [8, 1024], got {image_size!r}")
        # gymnasium picks MuJoCo's OpenGL backend from MUJOCO_GL when the first
        # renderer is made; unset, it settles on GLFW, which needs a display. Without
        # one only EGL (GPU or Mesa) or OSMesa work, and EGL is the common one.
        backend = os.environ.setdefault("MUJOCO_GL", "egl")
        if backend not in GL_BACKENDS:
            raise UsageError(
                f"MUJOCO_GL={backend!r} is not an OpenGL backend MuJoCo renders with; "
                f"use one of {', '.join(GL_BACKENDS)} (egl without a display)"
            )


def _goal_sources(benchmark: str, benchmark_seed: int) -> dict[str, str]:
    """Where each split's goal variants come from, in words (`MetaWorldSpec.goals`)."""
    if benchmark.startswith("MT"):
        source = {
            "seen": f"{benchmark}(seed={benchmark_seed}).train_tasks",
            "unseen": f"MT1(name, seed={HELDOUT_SEED_OFFSET + benchmark_seed}).train_tasks",
        }
    else:
        source = {
            "seen": f"{benchmark}(seed={benchmark_seed}).train_tasks",
            "unseen": f"{benchmark}(seed={benchmark_seed}).test_tasks",
        }
    return source
