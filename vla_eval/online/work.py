"""The fixed list of episodes a run consists of, cut into batches and shards, and its fingerprint.

Every task of the requested splits x seeds 0..N-1 — the same seeds for every policy,
so comparisons can be paired — cut into fixed batches. The batches depend only on
the environment's tasks and the config (never on what already ran), so a resumed or
sharded run sees the same batches as an uninterrupted one. Standard library and
`envs.base` only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from vla_eval.envs.base import Env, Task
from vla_eval.errors import UsageError
from vla_eval.online.config import OnlineConfig


@dataclass(frozen=True)
class Work:
    """One episode to run."""

    task: Task
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.task.name, self.task.split, self.seed)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= i < N")
    return i, n


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


def plan(env: Env, config: OnlineConfig) -> list[list[Work]]:
    """The full run as fixed batches: every chosen task x seed, batch_size at a time.

    Batches never mix tasks' order between runs: the list depends only on the
    environment's tasks and the config, so a resumed or sharded run sees the same
    batches.
    """
    work = [Work(t, s) for t in select_tasks(env, config) for s in range(config.trials)]
    b = config.batch_size
    return [work[i : i + b] for i in range(0, len(work), b)]


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


def shard_batches(batches: Sequence[list[Work]], shard: tuple[int, int]) -> list[list[Work]]:
    """Shard (i, N) of the batches: batches i, i + N, i + 2N, ... (the union of N shards is all)."""
    index, count = shard
    return [b for i, b in enumerate(batches) if i % count == index]
