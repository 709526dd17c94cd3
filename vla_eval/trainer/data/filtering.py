"""Quality filtering of demonstrations: drop failed, too short or long, idle and jerky ones.

`filter_demos` applies the thresholds of a `FilterConfig` and returns the kept
episodes with a `FilterReport` that says how many were dropped and why. It reads only
what a recorded demonstration has (actions, gripper state, success, length), never
the defects the generator injected. numpy only; must not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_eval.envs import tabletop as tt
from vla_eval.envs.base import FAMILIES
from vla_eval.errors import UsageError
from vla_eval.trainer.data.demos import Demos


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of `filter_demos`.

    Attributes:
        min_steps: shorter episodes are dropped ("too_short").
        max_steps_fraction: episodes longer than this fraction of their family's step
            limit are dropped ("too_long").
        idle_window: a demo is "idle" when some ``idle_window`` consecutive steps
            neither toggle the gripper nor tilt the wrist (|dyaw| < 0.25) and their
            summed (dx, dy) is shorter than ``idle_speed * idle_window``: the gripper
            is going nowhere, whatever small noise the actions carry.
        idle_speed: see ``idle_window`` (action units per step).
        max_turn: a demo is "jerky" when the median turning angle between consecutive
            moving steps (|(dx, dy)| >= 0.3) exceeds this many radians, over at least
            two turns. A median ignores the occasional sharp turn that noise causes.
    """

    min_steps: int = 2
    max_steps_fraction: float = 0.75
    idle_window: int = 4
    idle_speed: float = 0.25
    max_turn: float = 0.5

    def __post_init__(self) -> None:
        if self.min_steps < 1 or self.idle_window < 1:
            raise UsageError("min_steps and idle_window must be at least 1")
        if not (self.max_steps_fraction > 0 and self.idle_speed > 0 and self.max_turn > 0):
            raise UsageError("max_steps_fraction, idle_speed and max_turn must be positive")


#: Reasons in the order they are checked; a demo is counted under its first reason.
FILTER_REASONS: tuple[str, ...] = ("failed", "too_short", "too_long", "jerky", "idle")


@dataclass(frozen=True)
class FilterReport:
    """What `filter_demos` kept and dropped.

    Attributes:
        total, kept: episode counts.
        dropped: episodes dropped per reason (each under its first reason in
            `FILTER_REASONS`), so the values sum to ``total - kept``.
        kept_per_family: kept episodes per family.
    """

    total: int
    kept: int
    dropped: dict[str, int]
    kept_per_family: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "kept_per_family": dict(self.kept_per_family),
        }

    def describe(self) -> str:
        """One line, e.g. ``kept 95 of 100 demonstrations (dropped: 3 failed, 2 idle)``."""
        reasons = ", ".join(f"{n} {r}" for r, n in self.dropped.items() if n)
        return f"kept {self.kept} of {self.total} demonstrations (dropped: {reasons or 'none'})"


def is_idle(actions: np.ndarray, closed: np.ndarray, window: int = 4, speed: float = 0.25) -> bool:
    """Whether an episode has ``window`` steps in a row that go nowhere (see `FilterConfig`).

    Args:
        actions: (T, 7) the episode's actions.
        closed: (T,) whether the gripper was closed before each action.
        window: steps in a row.
        speed: mean speed (action units) below which the window goes nowhere.

    >>> still = np.zeros((5, 7)); still[:, 6] = -1
    >>> is_idle(still, np.zeros(5, bool)), is_idle(still[:3], np.zeros(3, bool))
    (True, False)
    """
    t = len(actions)
    if t < window:
        return False
    busy = ((actions[:, 6] > 0) != closed.astype(bool)) | (np.abs(actions[:, 5]) >= 0.25)
    motion = np.concatenate([np.zeros((1, 2)), np.cumsum(actions[:, 0:2], axis=0)])
    net = np.hypot(*(motion[window:] - motion[:-window]).T)  # (T - window + 1,)
    busy_count = np.convolve(busy.astype(int), np.ones(window, int), mode="valid")
    return bool(((net < speed * window) & (busy_count == 0)).any())


def median_turn(actions: np.ndarray, min_speed: float = 0.3) -> tuple[float, int]:
    """Median turning angle (rad) between consecutive moving steps, and how many turns.

    Args:
        actions: (T, 7); the (dx, dy) part is used.
        min_speed: both steps of a pair must move at least this fast.

    >>> zigzag = np.zeros((4, 7)); zigzag[:, 0] = 1; zigzag[:, 1] = [1, -1, 1, -1]
    >>> angle, turns = median_turn(zigzag)
    >>> round(angle, 4), turns
    (1.5708, 3)
    """
    v = actions[:, 0:2].astype(np.float64)
    speed = np.hypot(v[:, 0], v[:, 1])
    pair = (speed[1:] >= min_speed) & (speed[:-1] >= min_speed)
    if not pair.any():
        return 0.0, 0
    a, b = v[:-1][pair], v[1:][pair]
    cos = (a * b).sum(axis=1) / (speed[:-1][pair] * speed[1:][pair])
    return float(np.median(np.arccos(np.clip(cos, -1.0, 1.0)))), int(pair.sum())


def _jerky(actions: np.ndarray, max_turn: float) -> bool:
    turn, turns = median_turn(actions)
    return turns >= 2 and turn > max_turn


def filter_demos(demos: Demos, config: FilterConfig | None = None) -> tuple[Demos, FilterReport]:
    """Drop failed, too short, too long, idle and jerky demonstrations.

    The checks read only what a recorded dataset has (success flag, actions, the
    gripper state), never the generator's injected-defect labels.

    Returns:
        The kept episodes and a `FilterReport`.
    """
    config = FilterConfig() if config is None else config
    reasons = np.full(demos.num_episodes, "", dtype=object)
    starts = demos.starts()
    limits = np.array([tt.MAX_STEPS[FAMILIES[f]] for f in demos.family.tolist()])
    for e in range(demos.num_episodes):
        length = int(demos.length[e])
        sl = slice(starts[e], starts[e] + length)
        actions, closed = demos.actions[sl], demos.states[sl, 2] > 0.5
        if not demos.success[e]:
            reasons[e] = "failed"
        elif length < config.min_steps:
            reasons[e] = "too_short"
        elif length > config.max_steps_fraction * limits[e]:
            reasons[e] = "too_long"
        elif _jerky(actions, config.max_turn):
            reasons[e] = "jerky"
        elif is_idle(actions, closed, config.idle_window, config.idle_speed):
            reasons[e] = "idle"
    keep = reasons == ""
    kept = demos.select(keep)
    report = FilterReport(
        total=demos.num_episodes,
        kept=int(keep.sum()),
        dropped={r: int((reasons == r).sum()) for r in FILTER_REASONS},
        kept_per_family={f: int((kept.family == i).sum()) for i, f in enumerate(FAMILIES)},
    )
    return kept, report
