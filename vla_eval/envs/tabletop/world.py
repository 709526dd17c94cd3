"""What the tabletop world is made of: constants, colours, phrasings, task specs and scene state.

The proprioceptive state (float32, ``STATE_DIM`` = 5) is ``(x, y, closed, holding,
tilt / WRIST_MAX)`` with x, y in table units [0, 1] (image column and row / 64).

Seen and unseen splits are fixed by the task specs, not by chance: unseen episodes
use colour pairs, instruction phrasings and a start region for the manipulated
object that seen episodes never use (see `is_heldout_pair`, `PHRASINGS`,
`HOLDOUT_REGION`). This module depends on numpy and the package's `envs.base` and
`errors` only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_eval.envs.base import FAMILIES, SPLITS, Task
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


# --- scene state ----------------------------------------------------------------------


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
