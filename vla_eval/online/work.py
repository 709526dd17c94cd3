"""The fixed list of episodes a run consists of, cut into batches and shards, and its fingerprint.

Every task of the requested splits x seeds 0..N-1 — the same seeds for every policy,
so comparisons can be paired — cut into fixed batches, built on demand so memory does not grow with the number of
trials. The batches depend only on
the environment's tasks and the config (never on what already ran), so a resumed or
sharded run sees the same batches as an uninterrupted one. Standard library and
`envs.base` only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal, overload

from vla_eval.envs.base import Env, Task
from vla_eval.episodes.manifest import plan_position
from vla_eval.errors import UsageError
from vla_eval.online.config import OnlineConfig

#: The order of a plan's episodes: every seed of one task before the next (``task``),
#: or round by round, one seed of every task at a time (``seed``).
Order = Literal["task", "seed"]


@dataclass(frozen=True)
class Work:
    """One episode to run."""

    task: Task
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.task.name, self.task.split, self.seed)


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N; ``"auto"`` reads it from the environment.

    ``auto`` takes a Slurm array's ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_COUNT``
    (ids counted from ``SLURM_ARRAY_TASK_MIN``, so ``--array=1-4`` gives shards 0..3), or
    torchrun's ``RANK`` and ``WORLD_SIZE``.

    >>> parse_shard("auto", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1",
    ...                      "SLURM_ARRAY_TASK_COUNT": "4"})
    (2, 4)
    """
    if text == "auto":
        return _shard_from_environment(os.environ if environ is None else environ)
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/N (e.g. 0/4) or auto, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= i < N")
    return i, n


def _shard_from_environment(environ: Mapping[str, str]) -> tuple[int, int]:
    """(i, N) from a Slurm array task or a torchrun rank."""
    if "SLURM_ARRAY_TASK_ID" in environ:
        names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")
        default = {"SLURM_ARRAY_TASK_MIN": "0"}
    elif "RANK" in environ:
        names, default = ("RANK", "WORLD_SIZE"), {}
    else:
        raise UsageError(
            "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm array job) nor RANK "
            "(torchrun) is set; give --shard i/N"
        )
    values = []
    for name in names:
        text = environ.get(name, default.get(name))
        if text is None or not text.strip().isdigit():
            raise UsageError(f"--shard auto: {name} must be a whole number, got {text!r}")
        values.append(int(text))
    index = values[0] - (values[2] if len(values) > 2 else 0)
    count = values[1]
    if count < 1 or not 0 <= index < count:
        shown = ", ".join(f"{n}={environ.get(n)}" for n in names if n in environ)
        raise UsageError(f"--shard auto: {shown} do not give a shard 0 <= i < N")
    return index, count


def select_tasks(env: Env, config: OnlineConfig) -> list[Task]:
    """The environment's tasks in the requested splits (and names), in a fixed order."""
    available_splits = sorted({t.split for t in env.tasks})
    for split in config.splits:
        if split not in available_splits:
            raise UsageError(
                f"unknown split {split!r} for {env.name}; available: {', '.join(available_splits)}"
            )
    names = sorted({t.name for t in env.tasks})
    if config.tasks is not None:
        for name in config.tasks:
            if name not in names:
                raise UsageError(
                    f"unknown task {name!r} for {env.name}; available: {', '.join(names)}"
                )
    chosen = [
        t
        for t in env.tasks
        if t.split in config.splits and (config.tasks is None or t.name in config.tasks)
    ]
    if not chosen:
        raise UsageError("no task matches the requested tasks and splits")
    return sorted(chosen, key=lambda t: (config.splits.index(t.split), t.name))


def _same_batches(a: Sequence[list[Work]], b: object) -> bool:
    if not isinstance(b, Sequence):
        return NotImplemented
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=False))


class Plan(Sequence[list[Work]]):
    """The full run as fixed batches, built on demand: memory does not grow with `trials`.

    Batch ``k`` holds the episodes ``k * batch_size .. (k + 1) * batch_size - 1`` of the
    list "every chosen task (in order) x seeds 0..trials-1" (``order="seed"``: "seeds
    0..trials-1 x every chosen task"); only the batch asked for is built, so a run of
    ten million trials plans in constant memory.
    """

    def __init__(
        self, tasks: Sequence[Task], trials: int, batch_size: int, order: Order = "task"
    ) -> None:
        if order not in ("task", "seed"):
            raise UsageError(f"unknown episode order {order!r}; use task or seed")
        self.tasks = tuple(tasks)
        self.trials = trials
        self.batch_size = batch_size
        self.order = order
        self.episodes = len(self.tasks) * trials
        self._task_index = {(t.name, t.split): i for i, t in enumerate(self.tasks)}

    def __len__(self) -> int:
        return -(-self.episodes // self.batch_size)

    @overload
    def __getitem__(self, k: int) -> list[Work]: ...
    @overload
    def __getitem__(self, k: slice) -> list[list[Work]]: ...
    def __getitem__(self, k: int | slice) -> list[Work] | list[list[Work]]:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        first = k * self.batch_size
        last = min(first + self.batch_size, self.episodes)
        n = len(self.tasks)
        return [
            Work(self.tasks[task], seed)
            for task, seed in (
                plan_position(i, n, self.trials, self.order) for i in range(first, last)
            )
        ]

    def __eq__(self, other: object) -> bool:
        return _same_batches(self, other)

    __hash__ = None  # type: ignore[assignment]

    def batch_of(self, key: tuple[str, str, int]) -> int | None:
        """The index of the batch holding episode `key` (task, split, seed); None if not planned."""
        task = self._task_index.get((key[0], key[1]))
        if task is None or not 0 <= key[2] < self.trials:
            return None
        if self.order == "seed":
            return (key[2] * len(self.tasks) + task) // self.batch_size
        return (task * self.trials + key[2]) // self.batch_size


def plan(env: Env, config: OnlineConfig, order: Order = "task") -> Plan:
    """The full run as fixed batches: every chosen task x seed, batch_size at a time.

    Batches never mix tasks' order between runs: the list depends only on the
    environment's tasks and the config, so a resumed or sharded run sees the same
    batches. The batches are built on demand (`Plan`). ``order="seed"`` takes the
    same episodes round by round (seed 0 of every task, then seed 1, ...): the order
    of a run with a stopping rule, whose every prefix of whole rounds is balanced.
    """
    return Plan(select_tasks(env, config), config.trials, config.batch_size, order)


def run_id(env: Env, config: OnlineConfig, policy_id: str) -> str:
    """A short fingerprint of everything that determines the episodes of a run."""
    fields = asdict(config)
    fields.pop("batch_size")  # does not change episodes (see `plan`); kept out so it can be tuned
    fields.pop("record_actions")
    blob = json.dumps(
        {"env": env.name, "version": env.version, "policy": policy_id, "config": fields},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Shard(Sequence[list[Work]]):
    """Batches i, i + N, i + 2N, ... of a plan, built on demand."""

    def __init__(self, batches: Sequence[list[Work]], index: int, count: int) -> None:
        self.batches, self.index, self.count = batches, index, count

    def __len__(self) -> int:
        return len(range(self.index, len(self.batches), self.count))

    def positions(self) -> range:
        """The plan's batch indices in this shard."""
        return range(self.index, len(self.batches), self.count)

    @overload
    def __getitem__(self, k: int) -> list[Work]: ...
    @overload
    def __getitem__(self, k: slice) -> list[list[Work]]: ...
    def __getitem__(self, k: int | slice) -> list[Work] | list[list[Work]]:
        if isinstance(k, slice):
            return [self.batches[i] for i in self.positions()[k]]
        return self.batches[self.positions()[k]]

    def __eq__(self, other: object) -> bool:
        return _same_batches(self, other)

    __hash__ = None  # type: ignore[assignment]

    def episodes(self) -> int:
        """The number of episodes in this shard."""
        n = len(self)
        if not n:
            return 0
        last = self.batches[self.positions()[-1]]
        size = getattr(self.batches, "batch_size", None)
        return (n - 1) * size + len(last) if size else sum(len(b) for b in self)


def shard_batches(batches: Sequence[list[Work]], shard: tuple[int, int]) -> Shard:
    """Shard (i, N) of the batches: batches i, i + N, i + 2N, ... (the union of N shards is all)."""
    index, count = shard
    return Shard(batches, index, count)
