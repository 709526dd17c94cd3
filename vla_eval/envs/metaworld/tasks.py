"""Meta-World's benchmarks as tasks: names, instructions, splits' specs, seeds.

Constants and small helpers shared by the adapter: which benchmarks exist, one short
instruction per task class, the `MetaWorldSpec` of every task, the task class names
of a benchmark's splits and the seed rule (seed i runs the i-th of 50 goal
variants). Meta-World itself is imported only inside functions (the optional extra
``sim``); this module needs numpy and the package's `envs.base` and `errors` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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


def import_metaworld() -> Any:
    """The `metaworld` module, or a UsageError with the install hint."""
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
        import_metaworld()  # raises the install hint
        raise


def family_of(env_name: str) -> str:
    """``"pick-place-v3"`` -> ``"pick-place"``."""
    return env_name.rsplit("-v", 1)[0]


def class_names(benchmark: str) -> dict[str, list[str]]:
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


def check_seeds(seeds: Sequence[int] | np.ndarray) -> np.ndarray:
    """Seeds as int64 (N,); a UsageError unless each indexes one of the 50 goal variants."""
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
