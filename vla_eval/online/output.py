"""What a run writes and shows: episode records with the environment's provenance, progress.

Each finished episode becomes one record (the schema's required fields, the
environment's name, version, simulator package versions and the episode's seed and
task, the run's fingerprint, and the instruction and actions when there are any);
the key order is part of the file format, so it never changes. The progress bar
(stderr) shows the running success rate per split. Standard library, tqdm and the
package's `results` only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from vla_eval.envs.base import Env
from vla_eval.online.config import OnlineConfig
from vla_eval.online.work import Work


def env_provenance(env: Env, packages: Sequence[str] = ("numpy",)) -> dict[str, Any]:
    """Name, version and simulator package versions of an environment."""
    from vla_eval.results import versions

    extra = tuple(getattr(env, "packages", ())) or tuple(packages)
    return {"name": env.name, "version": env.version, "packages": versions(*extra)}


def episode_record(
    work: Work,
    result: dict[str, Any],
    config: OnlineConfig,
    provenance: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    """The episode record of one finished episode (see `rollout.rollout_batch` for ``result``)."""
    record = {
        "policy": config.policy_name,
        "task": work.task.name,
        "split": work.task.split,
        "seed": work.seed,
        "success": result["success"],
        "steps": result["steps"],
        "return": result["return"],
        "env": {**provenance, "seed": work.seed, "task": work.task.key},
        "run": run_id,
    }
    for key in ("instruction", "actions"):
        if key in result:
            record[key] = result[key]
    return record


class Progress:
    """A progress bar over a run's episodes with the running success rate per split.

    Args:
        total: episodes in the run (or shard).
        initial: episodes already finished (a resumed run).
        name: the policy's name, shown in the bar.
        enabled: False draws nothing.
    """

    def __init__(self, total: int, initial: int, name: str, enabled: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=f"online {name}",
            unit="ep",
            disable=not enabled,
            file=sys.stderr,
        )
        self._successes: dict[str, int] = {}
        self._trials: dict[str, int] = {}

    def add(self, split: str, success: bool) -> None:
        """Count one finished episode."""
        self._successes[split] = self._successes.get(split, 0) + int(success)
        self._trials[split] = self._trials.get(split, 0) + 1
        rates = {k: f"{self._successes[k]}/{n}" for k, n in self._trials.items()}
        self._bar.set_postfix(rates, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
