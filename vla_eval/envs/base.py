"""What every environment offers: the `Task` record and the vectorised `Env` protocol.

A rollout loop, an offline evaluation or a demonstration collector talks to an
environment only through this interface, so the built-in tabletop world and
adapters for external simulators are interchangeable. This module depends on the
standard library only (no numpy, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from vla_eval.errors import UsageError

#: Task families of the recipe, in the order the built-in world numbers them.
FAMILIES: tuple[str, ...] = ("pick", "place", "stack", "pour")

#: Splits that get the generalisation-gap treatment in reports.
SPLITS: tuple[str, ...] = ("seen", "unseen")

#: An observation: ``{"image": uint8 (N, H, W, 3), "state": float32 (N, S),
#: "instruction": list[str] of length N}``.
Obs = dict[str, Any]


@dataclass(frozen=True)
class Task:
    """One task of an environment, with the split it belongs to.

    Attributes:
        name: the task's name as it appears in episode records ("pick").
        family: the recipe's task family; for the built-in world one of `FAMILIES`.
        split: "seen" (conditions used in training demonstrations) or "unseen"
            (held-out conditions); adapters may use other split names.
        spec: the environment's own frozen description of what the task samples
            (for the tabletop world a `TabletopSpec`); compared by value.

    >>> Task("pick", "pick", "seen").key
    'pick/seen'
    """

    name: str
    family: str
    split: str
    spec: Any = None

    def __post_init__(self) -> None:
        for field in ("name", "family", "split"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value or "/" in value:
                raise UsageError(
                    f"Task.{field} must be a non-empty string without '/', got {value!r}"
                )

    @property
    def key(self) -> str:
        """``name/split``: unique among an environment's tasks."""
        return f"{self.name}/{self.split}"


@runtime_checkable
class Env(Protocol):
    """N environments stepped together.

    The batch size is set by each `reset` (``len(seeds)``); every array in and out
    has the batch on its first axis. An environment whose episode is done ignores
    further actions until the next `reset` and keeps reporting ``done=True``.

    Attributes:
        name: short name written into episode records ("tabletop").
        version: changes whenever dynamics, rendering or task sampling change, so
            results from different versions are not pooled by accident.
        action_dim: length of one action vector.
        tasks: every task the environment offers, each with its split.
    """

    name: str
    version: str
    action_dim: int

    @property
    def tasks(self) -> tuple[Task, ...]: ...

    def reset(self, seeds: Any, tasks: Any) -> Obs:
        """Start ``len(seeds)`` episodes; env i runs ``tasks[i]`` (or one task for all).

        The same (seed, task) pair gives the same episode whatever else is in the batch.
        """
        ...

    def step(self, actions: Any) -> tuple[Obs, Any, Any, dict[str, Any]]:
        """Apply actions (N, action_dim); return ``(obs, reward (N,), done (N,), info)``.

        ``info["success"]`` (N,) bool says whether each episode has succeeded.
        """
        ...


def lookup_task(by_key: dict[str, Task], key: str, what: str) -> Task:
    """The task named ``name/split`` (or just ``name``, meaning its seen split).

    Args:
        by_key: the environment's tasks by `Task.key`.
        key: what the user typed.
        what: the environment, for the error message ("tabletop", "Meta-World MT10").
    """
    full = key if "/" in key else f"{key}/seen"
    if full not in by_key:
        raise UsageError(f"unknown {what} task {key!r}; expected one of {', '.join(by_key)}")
    return by_key[full]


def resolve_tasks(by_key: dict[str, Task], tasks: Any, n: int, what: str) -> list[Task]:
    """One `Task` per environment from one task (or key) for all, or one per environment."""
    if isinstance(tasks, (Task, str)):
        tasks = [tasks] * n
    tasks = list(tasks)
    if len(tasks) != n:
        raise UsageError(f"got {len(tasks)} tasks for {n} seeds; give one task or one per seed")
    resolved = []
    for t in tasks:
        if isinstance(t, str):
            t = lookup_task(by_key, t, what)
        if not isinstance(t, Task) or t.key not in by_key or t != by_key[t.key]:
            raise UsageError(f"{t!r} is not a task of the {what} environment")
        resolved.append(t)
    return resolved
