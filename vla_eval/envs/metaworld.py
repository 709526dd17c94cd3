"""Meta-World adapter: the MuJoCo Sawyer benchmarks behind the vectorised `Env` protocol.

`MetaWorldEnv` runs N Meta-World (v3, gymnasium API) environments side by side, so
`vla_eval.online` evaluates a policy in a real physics simulator exactly as it does
in the built-in tabletop world. The tasks are a benchmark's task classes, each in a
*seen* and an *unseen* split; an episode is fixed by its (task, seed): the seed picks
one of the split's 50 goal variants (object and goal positions), so every policy
meets the same episodes and comparisons can be paired.

Splits (the exact definition; `docs/metaworld.md` says the same):

* MT benchmarks (``MT10``, ``MT25``, ``MT50``): *seen* goals of a task class are the
  benchmark's own training goals, ``metaworld.MT10(seed=benchmark_seed).train_tasks``
  (the ones ``gymnasium.make("Meta-World/MT10", seed=benchmark_seed)`` trains on).
  *Unseen* goals are 50 fresh positions from the same sampling ranges, drawn by
  Meta-World's own goal sampler from a held-out seed,
  ``metaworld.MT1(name, seed=HELDOUT_SEED_OFFSET + benchmark_seed).train_tasks``.
* ML benchmarks (``ML10``, ``ML25``, ``ML45``): *seen* tasks are the benchmark's
  training classes with their training goals, *unseen* tasks its held-out test
  classes with their test goals (``MLk(seed=benchmark_seed)``). As in Meta-World,
  the goal position is hidden from the observation (zeros) in ML benchmarks.

Observations are ``{"state": float32 (N, 39), "instruction": list[str]}`` and, when
images are asked for, ``"image": uint8 (N, H, W, 3)``. Actions are Meta-World's
(N, 4) in [-1, 1]: end-effector displacement (x, y, z) and gripper effort.

Meta-World, MuJoCo and gymnasium are imported only when an environment is built
(the optional extra ``sim``); importing this module needs numpy and the package's
`envs.base` and `errors` only. It never imports torch.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from vla_eval.envs.base import Obs, Task, lookup_task, resolve_tasks
from vla_eval.errors import UsageError

#: Benchmarks the adapter knows; MT ones split goals, ML ones split task classes.
BENCHMARKS: tuple[str, ...] = ("MT10", "MT25", "MT50", "ML10", "ML25", "ML45")
#: Goal variants Meta-World generates per task class (its ``_N_GOALS``); seeds index them.
GOALS_PER_TASK = 50
#: Added to ``benchmark_seed`` to draw the unseen goals of MT benchmarks. Far above any
#: seed people train with (``benchmark_seed`` itself must stay below it), so held-out
#: goals never come from a seed some training run used.
HELDOUT_SEED_OFFSET = 2**20
#: Meta-World's task horizon (``max_path_length``).
MAX_STEPS = 500
ACTION_DIM = 4
STATE_DIM = 39
#: Cameras defined in Meta-World's scenes.
CAMERAS: tuple[str, ...] = (
    "corner",
    "corner2",
    "corner3",
    "topview",
    "behindGripper",
    "gripperPOV",
)
#: Values of MUJOCO_GL that gymnasium's MuJoCo renderer accepts.
GL_BACKENDS: tuple[str, ...] = ("egl", "osmesa", "glfw")
#: Simulator packages whose versions every episode records.
PACKAGES: tuple[str, ...] = ("metaworld", "mujoco", "gymnasium", "numpy")

#: One short instruction per task class, after the task descriptions in the
#: Meta-World paper's appendix (Yu et al., CoRL 2019).
INSTRUCTIONS: dict[str, str] = {
    "assembly": "put the ring on the peg",
    "basketball": "dunk the basketball into the basket",
    "bin-picking": "move the puck from one bin to the other",
    "box-close": "put the lid on the box",
    "button-press-topdown": "press the button from the top",
    "button-press-topdown-wall": "press the button from the top behind the wall",
    "button-press": "press the button",
    "button-press-wall": "press the button behind the wall",
    "coffee-button": "push the button on the coffee machine",
    "coffee-pull": "pull the mug from the coffee machine",
    "coffee-push": "push the mug under the coffee machine",
    "dial-turn": "turn the dial",
    "disassemble": "take the ring off the peg",
    "door-close": "close the door",
    "door-lock": "lock the door",
    "door-open": "open the door",
    "door-unlock": "unlock the door",
    "drawer-close": "close the drawer",
    "drawer-open": "open the drawer",
    "faucet-close": "turn the faucet off",
    "faucet-open": "turn the faucet on",
    "hammer": "hammer the nail into the wall",
    "hand-insert": "insert the gripper into the hole",
    "handle-press-side": "press the handle down from the side",
    "handle-press": "press the handle down",
    "handle-pull-side": "pull the handle up from the side",
    "handle-pull": "pull the handle up",
    "lever-pull": "pull the lever up",
    "peg-insert-side": "insert the peg into the hole from the side",
    "peg-unplug-side": "unplug the peg from the side",
    "pick-out-of-hole": "pick the puck out of the hole",
    "pick-place": "pick up the puck and place it at the goal",
    "pick-place-wall": "pick up the puck and place it at the goal behind the wall",
    "plate-slide-back-side": "slide the plate out of the cabinet from the side",
    "plate-slide-back": "slide the plate out of the cabinet",
    "plate-slide-side": "slide the plate into the cabinet from the side",
    "plate-slide": "slide the plate into the cabinet",
    "push-back": "pull the puck back to the goal",
    "push": "push the puck to the goal",
    "push-wall": "push the puck to the goal behind the wall",
    "reach": "reach the goal",
    "reach-wall": "reach the goal behind the wall",
    "shelf-place": "place the puck on the shelf",
    "soccer": "kick the ball into the goal",
    "stick-pull": "pull the box with the stick",
    "stick-push": "push the box with the stick",
    "sweep-into": "sweep the puck into the hole",
    "sweep": "sweep the puck off the table",
    "window-close": "close the window",
    "window-open": "open the window",
}


@dataclass(frozen=True)
class MetaWorldSpec:
    """What a Meta-World task samples; `Task.spec` of every `MetaWorldEnv` task.

    Attributes:
        env_name: Meta-World's name of the task class ("reach-v3").
        benchmark: the benchmark the task comes from ("MT10").
        goals: where the split's goal variants come from, in words.
        max_steps: the episode's step limit (read by `vla_eval.online`).
    """

    env_name: str
    benchmark: str
    goals: str
    max_steps: int


def _import_metaworld() -> Any:
    try:
        import metaworld
    except ImportError as exc:
        raise UsageError(
            "Meta-World is not installed; install the simulator extra: pip install 'vla-eval[sim]'"
        ) from exc
    return metaworld


def metaworld_version() -> str:
    """The installed Meta-World version ("3.1.1"); UsageError if it is missing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("metaworld")
    except PackageNotFoundError:
        _import_metaworld()  # raises the install hint
        raise


def _family(env_name: str) -> str:
    """``"pick-place-v3"`` -> ``"pick-place"``."""
    return env_name.rsplit("-v", 1)[0]


def _class_names(benchmark: str) -> dict[str, list[str]]:
    """The task class names of each split, in the benchmark's order (cheap: no goals)."""
    from metaworld import env_dict

    if benchmark.startswith("MT"):
        names = list(
            env_dict.ALL_V3_ENVIRONMENTS
            if benchmark == "MT50"
            else getattr(env_dict, f"{benchmark}_V3")
        )
        return {"seen": names, "unseen": names}
    classes = getattr(env_dict, f"{benchmark}_V3")
    return {"seen": list(classes["train"]), "unseen": list(classes["test"])}


_ANNOUNCED: set[tuple[str, str, int]] = set()


# Goal generation runs Meta-World's sampler (an environment built per class and reset
# 50 times), ~1 s per class; the caches keep it to once per process.
@lru_cache(maxsize=8)
def _benchmark_goals(benchmark: str, seed: int) -> dict[str, dict[str, list[Any]]]:
    """{split: {env_name: [metaworld Task] * 50}} from the benchmark's own constructor."""
    metaworld = _import_metaworld()
    bench = getattr(metaworld, benchmark)(seed=seed)
    splits = {"seen": bench.train_tasks}
    if benchmark.startswith("ML"):
        splits["unseen"] = bench.test_tasks
    out: dict[str, dict[str, list[Any]]] = {}
    for split, tasks in splits.items():
        grouped: dict[str, list[Any]] = {}
        for t in tasks:
            grouped.setdefault(t.env_name, []).append(t)
        out[split] = grouped
    return out


@lru_cache(maxsize=64)
def _heldout_goals(env_name: str, seed: int) -> list[Any]:
    """Meta-World's goal sampler for one class, from the held-out seed."""
    metaworld = _import_metaworld()
    return list(metaworld.MT1(env_name, seed=HELDOUT_SEED_OFFSET + seed).train_tasks)


def goal_vectors(tasks: Sequence[Any]) -> np.ndarray:
    """(len(tasks), K) the sampled object/goal positions (``rand_vec``) of Meta-World tasks.

    Args:
        tasks: ``metaworld.Task`` records (as in ``benchmark.train_tasks``).
    """
    # Meta-World stores a task's parameters pickled; these records are its own, in memory.
    return np.array([pickle.loads(t.data)["rand_vec"] for t in tasks], dtype=np.float64)


def _check_seeds(seeds: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0:
        raise UsageError("seeds must be a non-empty 1-D sequence of integers")
    if not np.issubdtype(arr.dtype, np.integer):
        raise UsageError(f"seeds must be integers, got dtype {arr.dtype}")
    bad = arr[(arr < 0) | (arr >= GOALS_PER_TASK)]
    if bad.size:
        raise UsageError(
            f"Meta-World has {GOALS_PER_TASK} goal variants per task and split, so seeds run "
            f"0..{GOALS_PER_TASK - 1}; got seed {int(bad[0])} (use --trials {GOALS_PER_TASK} or fewer: "
            "more would repeat episodes of a deterministic simulator)"
        )
    return arr.astype(np.int64)


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
        if benchmark not in BENCHMARKS:
            raise UsageError(
                f"unknown Meta-World benchmark {benchmark!r}; use one of {', '.join(BENCHMARKS)}"
            )
        if (
            isinstance(benchmark_seed, bool)
            or not isinstance(benchmark_seed, int)
            or not 0 <= benchmark_seed < 2**20
        ):
            raise UsageError(
                f"benchmark_seed must be an integer in [0, 2**20), got {benchmark_seed!r}"
            )
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
        self._mw = _import_metaworld()
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
        self._classes = _class_names(benchmark)
        self._tasks = tuple(
            Task(
                name,
                _family(name),
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
            return _heldout_goals(task.spec.env_name, self.benchmark_seed)
        return _benchmark_goals(self.benchmark, self.benchmark_seed)[task.split][task.spec.env_name]

    def _announce(self, what: str) -> None:
        key = (what, self.benchmark, self.benchmark_seed)
        if self.progress and key not in _ANNOUNCED:
            _ANNOUNCED.add(key)
            goals = "held-out goals" if what == "unseen" else "goals"
            print(
                f"metaworld: generating the {self.benchmark} {goals} (seed {self.benchmark_seed}), "
                "about a second per task class, once per process",
                file=sys.stderr,
            )

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
        seed_arr = _check_seeds(seeds)
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
        self._instructions = [INSTRUCTIONS[_family(t.spec.env_name)] for t in task_list]
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
