"""The built-in tabletop world: a language-conditioned 2-D table seen as 64x64 RGB images.

Coloured blocks, bowls and cups lie on a table; a top-down gripper moves over it,
grasps, releases and tilts. Four task families follow the recipe: *pick* ("pick up
the red block"), *place* ("put the red block in the blue bowl"), *stack* ("stack the
red block on the green block") and *pour* ("pour the yellow cup into the blue
bowl", which needs the wrist tilted over the bowl). N environments are stepped
together in numpy; rendering paints small sprites into palette images by index
arithmetic, with no Python loop over environments. A vectorised `ScriptedExpert` solves every task and
has knobs that degrade demonstrations (noise, idle pauses, failures, zigzags).

Seen and unseen splits are fixed by the task specs, not by chance: unseen episodes
use colour pairs, instruction phrasings and a start region for the manipulated
object that seen episodes never use (see `is_heldout_pair`, `PHRASINGS`,
`HOLDOUT_REGION`). An episode depends only on its (seed, task), never on the batch
it runs in.

Actions are 7-D in [-1, 1], laid out like OpenVLA's delta end-effector actions:

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

The proprioceptive state (float32, ``STATE_DIM`` = 5) is ``(x, y, closed, holding,
tilt / WRIST_MAX)`` with x, y in table units [0, 1] (image column and row / 64).

This module depends on numpy and the package's `envs.base` and `errors` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from vla_eval.envs.base import FAMILIES, SPLITS, Obs, Task, lookup_task, resolve_tasks
from vla_eval.errors import UsageError

VERSION = "1.0"
IMAGE_SIZE = 64
ACTION_DIM = 7
STATE_DIM = 5
#: Names of the action dimensions, in order.
ACTION_NAMES: tuple[str, ...] = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
#: Action dimensions the world reads; the others are accepted and ignored.
USED_ACTION_DIMS: tuple[int, ...] = (0, 1, 5, 6)
STATE_NAMES: tuple[str, ...] = ("x", "y", "closed", "holding", "tilt")

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
COLOUR_RGB = np.array(
    [
        (230, 40, 40),
        (40, 190, 60),
        (50, 100, 240),
        (240, 220, 40),
        (165, 70, 225),
        (250, 140, 20),
    ],
    dtype=np.uint8,
)
TABLE_RGB = np.array((52, 52, 60), dtype=np.uint8)
GRIPPER_RGB = np.array((245, 245, 245), dtype=np.uint8)
LIQUID_RGB = np.array((170, 225, 255), dtype=np.uint8)
EMPTY_CUP_RGB = np.array((25, 25, 30), dtype=np.uint8)

# Object kinds, as stored in the scene's `kind` array.
EMPTY, BLOCK, BOWL, CUP = 0, 1, 2, 3
KIND_NAMES: tuple[str, ...] = ("", "block", "bowl", "cup")

MOVE_STEP = 0.08  # table units per step at |action| = 1: ~12 steps across the table
TILT_STEP = 0.4  # rad per step at |dyaw| = 1
WRIST_MAX = 1.6
POUR_ANGLE = 1.0
# Tolerances match what the image shows: closing anywhere over a block (9 px wide)
# grasps it, releasing anywhere over a bowl (15 px wide) drops into it. Objects start
# MIN_SEPARATION apart, more than any two tolerances, so no action is ambiguous.
GRASP_RADIUS = 0.08  # gripper centre to object centre, table units (~5 px)
BOWL_RADIUS = 0.1  # a block or cup within this of a bowl's centre is over it (~6 px)
STACK_RADIUS = 0.08
TABLE_LOW, TABLE_HIGH = 0.12, 0.88  # where object centres start
GRIP_LOW, GRIP_HIGH = 0.04, 0.96  # where the gripper may go
GRIP_START_LOW, GRIP_START_HIGH = 0.3, 0.6
MIN_SEPARATION = 0.25  # between object centres at the start: no two sprites touch
#: Start region of the manipulated object in unseen episodes: ((x_low, x_high), (y_low, y_high)).
#: No object starts here in seen episodes.
HOLDOUT_REGION: tuple[tuple[float, float], tuple[float, float]] = ((0.66, 0.88), (0.66, 0.88))

#: Episode step limits per family (the scripted expert needs at most about 60% of them).
MAX_STEPS: dict[str, int] = {"pick": 24, "place": 40, "stack": 40, "pour": 40}

#: Instruction templates per family: ``{a}`` is the manipulated object's colour, ``{b}``
#: the reference object's (bowl or base block). "seen" phrasings appear in training
#: demonstrations, "unseen" ones only in unseen episodes: one with a new verb and, where
#: two colours are named, one that names them in the opposite order, which defeats the
#: shortcut "the first colour is the object to move".
PHRASINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "pick": {
        "seen": (
            "pick up the {a} block",
            "grab the {a} block",
            "lift the {a} block",
            "take the {a} block",
        ),
        "unseen": ("get the {a} block", "grasp the {a} block"),
    },
    "place": {
        "seen": (
            "put the {a} block in the {b} bowl",
            "place the {a} block into the {b} bowl",
            "move the {a} block to the {b} bowl",
            "drop the {a} block in the {b} bowl",
        ),
        "unseen": ("set the {a} block inside the {b} bowl", "into the {b} bowl put the {a} block"),
    },
    "stack": {
        "seen": (
            "stack the {a} block on the {b} block",
            "put the {a} block on top of the {b} block",
            "place the {a} block onto the {b} block",
        ),
        "unseen": ("pile the {a} block on the {b} block", "onto the {b} block set the {a} block"),
    },
    "pour": {
        "seen": (
            "pour the {a} cup into the {b} bowl",
            "empty the {a} cup into the {b} bowl",
            "tip the {a} cup over the {b} bowl",
        ),
        "unseen": ("tilt the {a} cup over the {b} bowl", "into the {b} bowl pour the {a} cup"),
    },
}

# What each family puts in slots 0 (manipulated), 1 (reference), 2 (distractor).
_SLOT_KINDS: dict[str, tuple[int, int, int]] = {
    "pick": (BLOCK, BLOCK, BLOCK),
    "place": (BLOCK, BOWL, BOWL),
    "stack": (BLOCK, BLOCK, BLOCK),
    "pour": (CUP, BOWL, BOWL),
}
_FAMILY_INDEX = {f: i for i, f in enumerate(FAMILIES)}


def is_heldout_pair(a: str, b: str) -> bool:
    """Whether the ordered colour pair (a, b) is reserved for unseen episodes.

    A pair is held out when its colours sit opposite each other in `COLOURS`
    (index difference 3): red/yellow, green/purple, blue/orange, in either order.
    That is 6 of the 30 ordered pairs, and every colour still appears in seen pairs.

    >>> is_heldout_pair("red", "yellow"), is_heldout_pair("red", "blue")
    (True, False)
    """
    return (COLOURS.index(a) - COLOURS.index(b)) % len(COLOURS) == 3


def colour_pairs(split: str) -> tuple[tuple[str, str], ...]:
    """Ordered (manipulated, reference) colour pairs of distinct colours for a split."""
    _check_split(split)
    return tuple(
        (a, b)
        for a in COLOURS
        for b in COLOURS
        if a != b and is_heldout_pair(a, b) == (split == "unseen")
    )


@dataclass(frozen=True)
class TabletopSpec:
    """What a tabletop task samples.

    Attributes:
        family: one of `FAMILIES`.
        colour_pairs: (manipulated, reference) colours to draw from; for *pick* the
            reference colour is the first distractor block's.
        phrasings: instruction templates to draw from.
        start_region: "table" (no object starts in `HOLDOUT_REGION`) or "holdout"
            (the manipulated object starts inside it, the others outside).
        max_steps: the episode's step limit.
    """

    family: str
    colour_pairs: tuple[tuple[str, str], ...]
    phrasings: tuple[str, ...]
    start_region: str
    max_steps: int


def make_tasks() -> tuple[Task, ...]:
    """The world's eight tasks: every family on the seen and the unseen split."""
    tasks = []
    for family in FAMILIES:
        for split in SPLITS:
            spec = TabletopSpec(
                family=family,
                colour_pairs=colour_pairs(split),
                phrasings=PHRASINGS[family][split],
                start_region="table" if split == "seen" else "holdout",
                max_steps=MAX_STEPS[family],
            )
            tasks.append(Task(name=family, family=family, split=split, spec=spec))
    return tuple(tasks)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


# --- scene state and rendering --------------------------------------------------------


@dataclass
class Scene:
    """The full state of N tables with K object slots each (arrays are mutated in place).

    Attributes:
        kind: (N, K) int8, `EMPTY`, `BLOCK`, `BOWL` or `CUP`.
        colour: (N, K) int8 index into `COLOURS`.
        pos: (N, K, 2) float64 object centres (x, y) in table units.
        on: (N, K) int8 slot the object rests on or in (a bowl or a block); -1 for the table.
        full: (N, K) bool, a cup still holds liquid / a bowl has been poured into.
        grip: (N, 2) float64 gripper centre.
        closed: (N,) bool gripper closed.
        held: (N,) int8 slot in the gripper, -1 for none.
        tilt: (N,) float64 wrist tilt in rad.
    """

    kind: np.ndarray
    colour: np.ndarray
    pos: np.ndarray
    on: np.ndarray
    full: np.ndarray
    grip: np.ndarray
    closed: np.ndarray
    held: np.ndarray
    tilt: np.ndarray

    @classmethod
    def empty(cls, n: int, k: int) -> Scene:
        """N tables with K empty slots and an open gripper at the centre."""
        return cls(
            kind=np.zeros((n, k), np.int8),
            colour=np.zeros((n, k), np.int8),
            pos=np.full((n, k, 2), 0.5),
            on=np.full((n, k), -1, np.int8),
            full=np.zeros((n, k), bool),
            grip=np.full((n, 2), 0.5),
            closed=np.zeros(n, bool),
            held=np.full(n, -1, np.int8),
            tilt=np.zeros(n),
        )

    @property
    def n(self) -> int:
        return self.kind.shape[0]

    def state_vector(self) -> np.ndarray:
        """Proprioception (N, `STATE_DIM`) float32: x, y, closed, holding, tilt / WRIST_MAX."""
        out = np.empty((self.n, STATE_DIM), np.float32)
        out[:, 0:2] = self.grip
        out[:, 2] = self.closed
        out[:, 3] = self.held >= 0
        out[:, 4] = self.tilt / WRIST_MAX
        return out

    def take(self, rows: np.ndarray) -> Scene:
        """A copy holding only the tables at ``rows``."""
        return Scene(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})

    def covered(self) -> np.ndarray:
        """(N, K) bool: a block rests on this slot (so it cannot be grasped or stacked on)."""
        k = self.kind.shape[1]
        on_slot = self.on[:, :, None] == np.arange(k)[None, None, :]  # [n, j, slot]
        return (on_slot & (self.kind == BLOCK)[:, :, None]).any(axis=1)


_SPRITE = 17  # object sprite side (pixels), centre at 8
_GRIP_SPRITE = 25  # gripper sprite side, centre at 12
_PAD = _GRIP_SPRITE // 2 + 1
_N_ANGLES = 17  # tilt quantisation for drawing cups and the gripper
_STACK_SHIFT = -2  # a block on a block is drawn up-left, so the base peeks out


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    c = side // 2
    v, u = np.mgrid[-c : c + 1, -c : c + 1].astype(np.float64)
    return u, v


def _rotate(u: np.ndarray, v: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    # Coordinates of each pixel in the frame of a shape tilted clockwise by `angle`.
    c, s = np.cos(angle), np.sin(angle)
    return c * u + s * v, -s * u + c * v


@lru_cache(maxsize=1)
def _sprites() -> tuple[np.ndarray, np.ndarray]:
    """Sprite masks: objects (2 + _N_ANGLES, 17, 17) and gripper (2, _N_ANGLES, 25, 25).

    Object masks hold 0 (transparent), 1 (body colour) or 2 (interior: liquid or the
    empty inside of a cup). Object index 0 is a block, 1 a bowl, 2 + a a cup at tilt
    angle number a. Gripper masks are indexed [closed, angle] and are 0/1.
    """
    u, v = _grid(_SPRITE)
    objects = np.zeros((2 + _N_ANGLES, _SPRITE, _SPRITE), np.uint8)
    objects[0][(np.abs(u) <= 4) & (np.abs(v) <= 4)] = 1
    r = np.hypot(u, v)
    objects[1][(r > 4.6) & (r <= 7.6)] = 1
    objects[1][r <= 4.6] = 2
    for a, angle in enumerate(np.linspace(0.0, WRIST_MAX, _N_ANGLES)):
        cu, cv = _rotate(u, v, angle)
        body = (np.abs(cu) <= 4.0) & (np.abs(cv) <= 6.0)
        inside = (np.abs(cu) <= 2.0) & (cv >= -6.0) & (cv <= 4.0)  # open at the top
        objects[2 + a][body] = 1
        objects[2 + a][inside] = 2
    gu, gv = _grid(_GRIP_SPRITE)
    gripper = np.zeros((2, _N_ANGLES, _GRIP_SPRITE, _GRIP_SPRITE), np.uint8)
    for closed, (inner, outer) in enumerate(((7.5, 9.5), (5.0, 7.0))):
        for a, angle in enumerate(np.linspace(0.0, WRIST_MAX, _N_ANGLES)):
            cu, cv = _rotate(gu, gv, angle)
            fingers = (np.abs(cu) >= inner) & (np.abs(cu) <= outer) & (cv >= -6.0) & (cv <= 4.0)
            palm = (np.abs(cu) <= outer) & (cv >= -8.0) & (cv <= -6.0)
            stem = (np.abs(cu) <= 1.0) & (cv >= -11.0) & (cv <= -8.0)
            gripper[closed, a][fingers | palm | stem] = 1
    return objects, gripper


def _angle_index(tilt: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(tilt, 0.0, WRIST_MAX) / WRIST_MAX * (_N_ANGLES - 1)).astype(np.intp)


def _to_pixel(xy: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(xy * IMAGE_SIZE), 0, IMAGE_SIZE - 1).astype(np.intp)


def _paint(
    canvas: np.ndarray,
    centre: np.ndarray,
    masks: np.ndarray,
    body: np.ndarray,
    inner: np.ndarray,
) -> None:
    """Paint one sprite per image onto the padded palette canvas (N, H+2P, W+2P) in place.

    Args:
        canvas: uint8 palette indices (see `_PALETTE`), padded by ``_PAD`` on each side.
        centre: (N, 2) pixel (column, row) of each sprite centre.
        masks: (N, s, s) uint8 sprite masks (0 transparent, 1 body, 2 interior).
        body, inner: (N,) uint8 palette indices; an ``inner`` of 0 leaves the interior
            transparent.
    """
    n, side = masks.shape[0], masks.shape[1]
    width = canvas.shape[2]
    offsets = np.arange(side) - side // 2
    rows = (centre[:, 1] + _PAD)[:, None] + offsets  # (N, s)
    cols = (centre[:, 0] + _PAD)[:, None] + offsets
    flat = canvas.reshape(-1)
    index = (np.arange(n) * canvas.shape[1] * width)[:, None, None] + rows[:, :, None] * width
    index = index + cols[:, None, :]  # (N, s, s) into the flattened canvas
    patch = flat[index]
    patch = np.where(masks == 1, body[:, None, None], patch)
    patch = np.where((masks == 2) & (inner > 0)[:, None, None], inner[:, None, None], patch)
    flat[index] = patch


# Palette indices of the palette canvas: 0 table, 1 gripper, 2 liquid, 3 empty cup,
# then the object colours in `COLOURS` order.
_TABLE, _GRIPPER, _LIQUID, _EMPTY_CUP, _FIRST_COLOUR = 0, 1, 2, 3, 4
_PALETTE = np.vstack([TABLE_RGB, GRIPPER_RGB, LIQUID_RGB, EMPTY_CUP_RGB, COLOUR_RGB])


def render(scene: Scene) -> np.ndarray:
    """Draw every table as a (N, 64, 64, 3) uint8 RGB image.

    Bowls are drawn first, then objects on the table or in bowls, then blocks stacked
    on blocks (shifted up-left so the base shows), then the held object, then the
    gripper (open: wide fingers; closed: narrow fingers), tilted with the wrist.
    Painting works on palette indices (one byte per pixel) and looks the colours up
    once at the end, which is several times faster than painting RGB.
    """
    objects, gripper = _sprites()
    n, k = scene.kind.shape
    side = IMAGE_SIZE + 2 * _PAD
    canvas = np.zeros((n, side, side), np.uint8)
    rows = np.arange(n)
    held_mask = (scene.held[:, None] == np.arange(k)[None, :]) & (scene.held[:, None] >= 0)
    on_kind = np.take_along_axis(scene.kind, np.maximum(scene.on, 0).astype(np.intp), axis=1)
    stacked = (scene.on >= 0) & (on_kind == BLOCK)
    layer = np.where(scene.kind == BOWL, 0, np.where(stacked, 2, 1))
    layer = np.where(held_mask, 3, layer)
    layer = np.where(scene.kind == EMPTY, -1, layer)
    order = np.argsort(layer * k + np.arange(k)[None, :], axis=1)
    tilt_index = _angle_index(scene.tilt)
    for j in range(k):
        slot = order[:, j]
        kind = scene.kind[rows, slot]
        is_cup = kind == CUP
        sprite = np.where(kind == BOWL, 1, 0)
        sprite = np.where(is_cup, np.where(scene.held == slot, 2 + tilt_index, 2), sprite)
        masks = objects[sprite]
        masks[kind == EMPTY] = 0
        centre = _to_pixel(scene.pos[rows, slot])
        centre += np.where(stacked[rows, slot], _STACK_SHIFT, 0)[:, None]
        body = (scene.colour[rows, slot] + _FIRST_COLOUR).astype(np.uint8)
        full = scene.full[rows, slot]
        inner = np.where(full, _LIQUID, np.where(is_cup, _EMPTY_CUP, 0)).astype(np.uint8)
        _paint(canvas, centre, masks, body, inner)
    grip_masks = gripper[scene.closed.astype(np.intp), tilt_index]
    white = np.full(n, _GRIPPER, np.uint8)
    _paint(canvas, _to_pixel(scene.grip), grip_masks, white, np.zeros(n, np.uint8))
    # np.take is several times faster than fancy indexing for this palette lookup.
    return np.take(_PALETTE, canvas[:, _PAD : _PAD + IMAGE_SIZE, _PAD : _PAD + IMAGE_SIZE], axis=0)


# --- the environment --------------------------------------------------------------------


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


def _check_seeds(seeds: Sequence[int] | np.ndarray) -> np.ndarray:
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
        seed_arr = _check_seeds(seeds)
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


# --- the scripted expert ------------------------------------------------------------------


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
        seed_arr = _check_seeds(seeds)
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
    `vla_eval.online` calls ``reset(n)`` after each batch's reset and passes
    ``obs["env_index"]``, the batch rows it wants actions for.
    """

    def __init__(self, env: TabletopEnv, quality: DemoQuality | None = None) -> None:
        self.env = env
        self.expert = ScriptedExpert(quality or DemoQuality())

    def reset(self, n: int) -> None:
        self.expert.reset(self.env, self.env._seeds)

    def __call__(self, obs: Obs) -> np.ndarray:
        return self.expert.act(self.env)[np.asarray(obs["env_index"])]
