"""Where a Meta-World task's 50 goal variants come from, generated once per process.

*Seen* goals are a benchmark's own (``MT10(seed=benchmark_seed).train_tasks``, or the
test tasks of an ML benchmark's held-out classes); *unseen* goals of MT benchmarks are
drawn by Meta-World's goal sampler from a held-out seed. Generation runs Meta-World's
sampler, so it is cached. Depends on numpy and `envs.metaworld.tasks` only.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from vla_eval.envs.metaworld.tasks import HELDOUT_SEED_OFFSET, import_metaworld

_ANNOUNCED: set[tuple[str, str, int]] = set()


# Goal generation runs Meta-World's sampler (an environment built per class and reset
# 50 times), ~1 s per class; the caches keep it to once per process.
@lru_cache(maxsize=8)
def benchmark_goals(benchmark: str, seed: int) -> dict[str, dict[str, list[Any]]]:
    """{split: {env_name: [metaworld Task] * 50}} from the benchmark's own constructor."""
    metaworld = import_metaworld()
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
def heldout_goals(env_name: str, seed: int) -> list[Any]:
    """Meta-World's goal sampler for one class, from the held-out seed."""
    metaworld = import_metaworld()
    return list(metaworld.MT1(env_name, seed=HELDOUT_SEED_OFFSET + seed).train_tasks)


def goal_vectors(tasks: Sequence[Any]) -> np.ndarray:
    """(len(tasks), K) the sampled object/goal positions (``rand_vec``) of Meta-World tasks.

    Args:
        tasks: ``metaworld.Task`` records (as in ``benchmark.train_tasks``).
    """
    # Meta-World stores a task's parameters pickled; these records are its own, in memory.
    return np.array([pickle.loads(t.data)["rand_vec"] for t in tasks], dtype=np.float64)


def announce(what: str, benchmark: str, seed: int) -> None:
    """Say on stderr, once per process, that goals are being generated (it takes seconds)."""
    key = (what, benchmark, seed)
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        goals = "held-out goals" if what == "unseen" else "goals"
        print(
            f"metaworld: generating the {benchmark} {goals} (seed {seed}), "
            "about a second per task class, once per process",
            file=sys.stderr,
        )
