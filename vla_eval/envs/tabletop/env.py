"""The tabletop environment: N episodes sampled from their seeds and stepped together in numpy.

A top-down gripper moves over the table, grasps, releases and tilts. An episode
depends only on its (seed, task), never on the batch it runs in. Actions are 7-D in
[-1, 1], laid out like OpenVLA's delta end-effector actions:

====  ========  ===================================================================
dim   name      effect
====  ========  ===================================================================
0     dx        gripper moves ``dx * MOVE_STEP`` table units to the right
1     dy        gripper moves ``dy * MOVE_STEP`` table units down the image
2     dz        unused (a top-down world has no height)
3     droll     unused
4     dpitch    unused
5     dyaw      wrist tilt changes by ``dyaw * TILT_STEP`` rad, kept in [0, WRIST_MAX];
              a held, full cup pours once the tilt reaches ``POUR_ANGLE``
6     gripper   absolute: > 0 closes; a closed, empty gripper grasps the nearest
              block or cup within ``GRASP_RADIUS`` (so closing a little early and
              moving on still grasps), <= 0 opens (releases; a block lands in a bowl or
              on a block it is released over)
====  ========  ===================================================================

This module depends on numpy, `envs.base`, `envs.tabletop.world` and `envs.tabletop.rendering` only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_eval.envs.base import FAMILIES, Obs, Task, lookup_task, resolve_tasks
from vla_eval.envs.tabletop.rendering import render
from vla_eval.envs.tabletop.world import (
    ACTION_DIM,
    BLOCK,
    BOWL,
    BOWL_RADIUS,
    COLOURS,
    CUP,
    GRASP_RADIUS,
    GRIP_HIGH,
    GRIP_LOW,
    GRIP_START_HIGH,
    GRIP_START_LOW,
    HOLDOUT_REGION,
    MIN_SEPARATION,
    MOVE_STEP,
    POUR_ANGLE,
    STACK_RADIUS,
    TABLE_HIGH,
    TABLE_LOW,
    TILT_STEP,
    VERSION,
    WRIST_MAX,
    Scene,
    TabletopSpec,
    make_tasks,
)
from vla_eval.errors import UsageError

# What each family puts in slots 0 (manipulated), 1 (reference), 2 (distractor).
_SLOT_KINDS: dict[str, tuple[int, int, int]] = {
    "pick": (BLOCK, BLOCK, BLOCK),
    "place": (BLOCK, BOWL, BOWL),
    "stack": (BLOCK, BLOCK, BLOCK),
    "pour": (CUP, BOWL, BOWL),
}
_FAMILY_INDEX = {f: i for i, f in enumerate(FAMILIES)}


def _in_region(xy: np.ndarray) -> np.ndarray:
    (x0, x1), (y0, y1) = HOLDOUT_REGION
    return (xy[..., 0] >= x0) & (xy[..., 0] <= x1) & (xy[..., 1] >= y0) & (xy[..., 1] <= y1)


def _sample_positions(rng: np.random.Generator, start_region: str) -> np.ndarray:
    """Three object centres (3, 2): slot 0 in the region the spec names, all apart."""
    (x0, x1), (y0, y1) = HOLDOUT_REGION
    for _ in range(1000):
        if start_region == "holdout":
            first = np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])
        else:
            first = rng.uniform(TABLE_LOW, TABLE_HIGH, 2)
            if _in_region(first):
                continue
        others = rng.uniform(TABLE_LOW, TABLE_HIGH, (2, 2))
        pos = np.vstack([first, others])
        if _in_region(others).any():
            continue
        gaps = np.linalg.norm(pos[:, None] - pos[None, :], axis=-1)[np.triu_indices(3, 1)]
        if (gaps >= MIN_SEPARATION).all():
            return pos
    raise RuntimeError("could not place objects apart; the table constants are inconsistent")


def _sample_episode(seed: int, task: Task) -> dict:
    """Everything random about one episode, drawn from its own generator."""
    spec: TabletopSpec = task.spec
    rng = np.random.default_rng(seed)
    a, b = spec.colour_pairs[rng.integers(len(spec.colour_pairs))]
    rest = [c for c in COLOURS if c not in (a, b)]
    c = rest[rng.integers(len(rest))]
    template = spec.phrasings[rng.integers(len(spec.phrasings))]
    return {
        "colours": [COLOURS.index(a), COLOURS.index(b), COLOURS.index(c)],
        "instruction": template.format(a=a, b=b),
        "pos": _sample_positions(rng, spec.start_region),
        "grip": rng.uniform(GRIP_START_LOW, GRIP_START_HIGH, 2),
    }


def check_seeds(seeds: Sequence[int] | np.ndarray) -> np.ndarray:
    """Seeds as int64 (N,); a UsageError unless a non-empty 1-D list of non-negative integers."""
    arr = np.asarray(seeds)
    if arr.ndim != 1 or arr.size == 0:
        raise UsageError("seeds must be a non-empty 1-D sequence of integers")
    if not np.issubdtype(arr.dtype, np.integer):
        raise UsageError(f"seeds must be integers, got dtype {arr.dtype}")
    if (arr < 0).any():
        raise UsageError("seeds must be non-negative integers")
    return arr.astype(np.int64)


class TabletopEnv:
    """N tabletop episodes stepped together (see the module docstring for actions).

    >>> env = TabletopEnv()
    >>> obs = env.reset([0, 1], "pick/seen")
    >>> obs["image"].shape, obs["state"].shape, len(obs["instruction"])
    ((2, 64, 64, 3), (2, 5), 2)
    >>> obs, reward, done, info = env.step(np.zeros((2, 7)))
    >>> bool(done.any()), info["success"].tolist()
    (False, [False, False])
    """

    name = "tabletop"
    version = VERSION
    action_dim = ACTION_DIM

    def __init__(self) -> None:
        self._tasks = make_tasks()
        self._by_key = {t.key: t for t in self._tasks}
        self._scene: Scene | None = None

    @property
    def tasks(self) -> tuple[Task, ...]:
        return self._tasks

    def task(self, key: str) -> Task:
        """The task named ``family/split`` (or just the name, meaning the seen split)."""
        return lookup_task(self._by_key, key, "tabletop")

    def _resolve_tasks(self, tasks: Task | str | Sequence[Task | str], n: int) -> list[Task]:
        return resolve_tasks(self._by_key, tasks, n, "tabletop")

    def reset(
        self, seeds: Sequence[int] | np.ndarray, tasks: Task | str | Sequence[Task | str]
    ) -> Obs:
        """Start one episode per seed; ``tasks`` is one task (or ``"family/split"``) or one per seed."""
        seed_arr = check_seeds(seeds)
        n = seed_arr.size
        self._task_list = self._resolve_tasks(tasks, n)
        scene = Scene.empty(n, 3)
        self._family = np.array([_FAMILY_INDEX[t.family] for t in self._task_list], np.int8)
        self._max_steps = np.array([t.spec.max_steps for t in self._task_list], np.int32)
        self._instructions = []
        for i, (seed, task) in enumerate(zip(seed_arr.tolist(), self._task_list, strict=True)):
            episode = _sample_episode(seed, task)
            scene.kind[i] = _SLOT_KINDS[task.family]
            scene.colour[i] = episode["colours"]
            scene.pos[i] = episode["pos"]
            scene.grip[i] = episode["grip"]
            self._instructions.append(episode["instruction"])
        scene.full[:, 0] = scene.kind[:, 0] == CUP
        self._scene = scene
        self._seeds = seed_arr
        self._t = np.zeros(n, np.int32)
        self._done = np.zeros(n, bool)
        self._success = np.zeros(n, bool)
        self._failed = np.zeros(n, bool)
        return self._observe()

    # Read-only views for the scripted expert and for tests.
    @property
    def scene(self) -> Scene:
        """The current privileged state (the expert reads it; a policy must not)."""
        if self._scene is None:
            raise UsageError("call reset(seeds, tasks) before using the environment")
        return self._scene

    @property
    def family_index(self) -> np.ndarray:
        """(N,) index into `FAMILIES` of each env's task."""
        self.scene  # noqa: B018 - raises before the first reset
        return self._family

    @property
    def steps(self) -> np.ndarray:
        """(N,) steps taken so far in each episode."""
        self.scene  # noqa: B018
        return self._t

    @property
    def current_tasks(self) -> list[Task]:
        """The task each env runs."""
        self.scene  # noqa: B018
        return list(self._task_list)

    def render(self) -> np.ndarray:
        """The batch's current frames (N, 64, 64, 3) uint8: what ``obs["image"]`` shows.

        A finished episode keeps its last frame. Rendering happens in `step` anyway
        (the images are the observation), so this costs a copy.
        """
        self.scene  # noqa: B018 - raises before the first reset
        return self._images.copy()

    def _observe(self, changed: np.ndarray | None = None) -> Obs:
        """The observation; only tables in ``changed`` (default: all) are re-rendered."""
        scene = self.scene
        if changed is None or changed.all():
            self._images = render(scene)
        elif changed.any():
            # A finished episode is frozen, so its last frame is still right.
            rows = np.flatnonzero(changed)
            self._images[rows] = render(scene.take(rows))
        return {
            "image": self._images.copy(),
            "state": scene.state_vector(),
            "instruction": list(self._instructions),
        }

    def step(self, actions: np.ndarray) -> tuple[Obs, np.ndarray, np.ndarray, dict]:
        """Apply (N, 7) actions in [-1, 1] (values outside are clipped).

        Returns:
            ``(obs, reward, done, info)``: reward (N,) float32 is 1 on the step an
            episode succeeds and 0 otherwise; done (N,) bool; info has ``success``
            (N,) bool, ``timeout`` (N,) bool and ``steps`` (N,) int32.
        """
        scene = self.scene
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (scene.n, ACTION_DIM):
            raise UsageError(f"actions must have shape ({scene.n}, {ACTION_DIM}), got {a.shape}")
        if not np.isfinite(a).all():
            raise UsageError("actions contain NaN or infinity")
        a = np.clip(a, -1.0, 1.0)
        live = ~self._done
        rows = np.arange(scene.n)

        scene.grip[live] = np.clip(scene.grip[live] + a[live, 0:2] * MOVE_STEP, GRIP_LOW, GRIP_HIGH)
        scene.tilt[live] = np.clip(scene.tilt[live] + a[live, 5] * TILT_STEP, 0.0, WRIST_MAX)
        close = a[:, 6] > 0
        holding = scene.held >= 0
        slot = np.maximum(scene.held, 0).astype(np.intp)
        scene.pos[rows[holding], slot[holding]] = scene.grip[holding]

        release = live & ~close & scene.closed & holding
        if release.any():
            self._release(np.flatnonzero(release))
        grasp = live & close & ~holding
        if grasp.any():
            self._grasp(np.flatnonzero(grasp))
        scene.closed[live] = close[live]
        self._pour(live)

        self._t[live] += 1
        success = self._succeeded() & live
        newly = success & ~self._success
        self._success |= success
        timeout = live & ~self._success & (self._t >= self._max_steps)
        self._done |= self._success | self._failed | timeout
        info = {"success": self._success.copy(), "timeout": timeout, "steps": self._t.copy()}
        return self._observe(live), newly.astype(np.float32), self._done.copy(), info

    def _grasp(self, idx: np.ndarray) -> None:
        scene = self.scene
        kind = scene.kind[idx]
        graspable = ((kind == BLOCK) | (kind == CUP)) & ~scene.covered()[idx]
        dist = np.linalg.norm(scene.pos[idx] - scene.grip[idx, None], axis=-1)
        dist = np.where(graspable, dist, np.inf)
        slot = dist.argmin(axis=1)
        ok = dist[np.arange(idx.size), slot] < GRASP_RADIUS
        idx, slot = idx[ok], slot[ok]
        scene.held[idx] = slot
        scene.on[idx, slot] = -1
        scene.pos[idx, slot] = scene.grip[idx]

    def _release(self, idx: np.ndarray) -> None:
        scene = self.scene
        slot = scene.held[idx].astype(np.intp)
        k = scene.kind.shape[1]
        sub = np.arange(idx.size)
        is_block = scene.kind[idx, slot] == BLOCK
        dist = np.linalg.norm(scene.pos[idx] - scene.grip[idx, None], axis=-1)
        not_self = np.arange(k)[None, :] != slot[:, None]
        bowl_d = np.where(scene.kind[idx] == BOWL, dist, np.inf)
        bowl = bowl_d.argmin(axis=1)
        in_bowl = is_block & (bowl_d[sub, bowl] < BOWL_RADIUS)
        top_free = (scene.kind[idx] == BLOCK) & ~scene.covered()[idx] & not_self
        block_d = np.where(top_free, dist, np.inf)
        base = block_d.argmin(axis=1)
        on_block = is_block & ~in_bowl & (block_d[sub, base] < STACK_RADIUS)
        target = np.where(in_bowl, bowl, np.where(on_block, base, -1))
        scene.on[idx, slot] = target
        # A released block settles at the centre of what it lands on.
        landed = target >= 0
        scene.pos[idx[landed], slot[landed]] = scene.pos[idx[landed], target[landed]]
        scene.held[idx] = -1

    def _pour(self, live: np.ndarray) -> None:
        scene = self.scene
        holding = live & (scene.held >= 0)
        slot = np.maximum(scene.held, 0).astype(np.intp)
        rows = np.arange(scene.n)
        pouring = (
            holding
            & (scene.kind[rows, slot] == CUP)
            & scene.full[rows, slot]
            & (scene.tilt >= POUR_ANGLE - 1e-9)
        )
        if not pouring.any():
            return
        idx = np.flatnonzero(pouring)
        scene.full[idx, slot[idx]] = False
        dist = np.linalg.norm(scene.pos[idx] - scene.grip[idx, None], axis=-1)
        dist = np.where(scene.kind[idx] == BOWL, dist, np.inf)
        bowl = dist.argmin(axis=1)
        hit = dist[np.arange(idx.size), bowl] < BOWL_RADIUS
        scene.full[idx[hit], bowl[hit]] = True
        # Liquid on the table or in the wrong bowl cannot be undone.
        self._failed[idx] |= ~(hit & (bowl == 1))

    def _succeeded(self) -> np.ndarray:
        scene = self.scene
        fam = self._family
        not_holding_0 = scene.held != 0
        pick = scene.held == 0
        place = (scene.on[:, 0] == 1) & not_holding_0
        stack = place & (scene.on[:, 1] == -1)
        pour = scene.full[:, 1] & (scene.kind[:, 1] == BOWL)
        return np.select(
            [fam == 0, fam == 1, fam == 2, fam == 3], [pick, place, stack, pour], default=False
        )
