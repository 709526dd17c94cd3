"""What a shard of a run was planned to run, written beside its episodes file, and the check
that a set of shard files adds up to the whole run.

A sharded run (`vla-eval online --shard i/N`, or ``--shard auto`` under a Slurm array or
torchrun) writes ``<episodes file>.shard.json`` next to its episodes: the run's fingerprint,
the shard, and the plan that fixes which (task, split, seed) episodes it owns — the tasks in
order, the trials per task, the batch size and the episode order. The keys are not listed one
by one (a shard of a ten-million-episode run would need a file as large as its episodes):
`ShardManifest.keys` derives them, by the same arithmetic as the run's plan
(`vla_eval.online.work.Plan`). `check_shards` reads the manifests of the files a report is
given and names what is missing: whole shards, or episodes of a shard that was cut short.
Standard library and the package's `results`/`inputs`/`errors` only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError

SCHEMA = "vla-eval/shard-manifest/1"
SUFFIX = ".shard.json"

#: (task, split, seed)
Key = tuple[str, str, int]


def plan_position(i: int, tasks: int, trials: int, order: str) -> tuple[int, int]:
    """(task index, seed) of the `i`-th episode of a run's plan: every seed of a task
    before the next (``order="task"``), or round by round (``"seed"``). The one place
    this arithmetic lives: the run's `vla_eval.online.work.Plan` and the manifests use it.

    >>> plan_position(5, 2, 3, "task"), plan_position(5, 2, 3, "seed")
    ((1, 2), (1, 2))
    """
    if order == "seed":
        return i % tasks, i // tasks
    return i // trials, i % trials


def manifest_path(episodes: str | Path) -> Path:
    """The manifest beside an episodes file: ``run.jsonl`` -> ``run.jsonl.shard.json``."""
    episodes = Path(episodes)
    return episodes.with_name(episodes.name + SUFFIX)


@dataclass(frozen=True)
class ShardManifest:
    """What one shard of a run was planned to run.

    Attributes:
        run: the run's fingerprint (`vla_eval.online.work.run_id`), as in every record.
        shard: (i, N): this shard runs batches i, i + N, i + 2N, ... of the plan.
        tasks: the plan's (task, split) pairs in order.
        trials: seeds 0..trials-1 per (task, split).
        batch_size: episodes per batch.
        order: ``task`` (every seed of a task before the next) or ``seed`` (round by round).
        policy: the policy's name, for messages.
    """

    run: str
    shard: tuple[int, int]
    tasks: tuple[tuple[str, str], ...]
    trials: int
    batch_size: int
    order: str = "task"
    policy: str = ""

    @property
    def episodes(self) -> int:
        """Episodes of the whole run."""
        return len(self.tasks) * self.trials

    @property
    def batches(self) -> int:
        """Batches of the whole run."""
        return math.ceil(self.episodes / self.batch_size)

    def positions(self) -> range:
        """The plan's batch indices this shard runs."""
        return range(self.shard[0], self.batches, self.shard[1])

    def planned(self) -> int:
        """How many episodes this shard was planned to run."""
        size, total = self.batch_size, self.episodes
        return sum(min((p + 1) * size, total) - p * size for p in self.positions())

    def keys(self) -> Iterator[Key]:
        """This shard's episodes, in plan order (generated, never stored)."""
        n = len(self.tasks)
        for p in self.positions():
            for i in range(p * self.batch_size, min((p + 1) * self.batch_size, self.episodes)):
                task, seed = plan_position(i, n, self.trials, self.order)
                yield (*self.tasks[task], seed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "run": self.run,
            "shard": list(self.shard),
            "policy": self.policy,
            "plan": {
                "tasks": [list(t) for t in self.tasks],
                "trials": self.trials,
                "batch_size": self.batch_size,
                "order": self.order,
            },
            "planned_episodes": self.planned(),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ShardManifest:
        """A manifest from its JSON; a malformed one is a UsageError naming ``where``."""
        try:
            if data.get("schema") != SCHEMA:
                raise ValueError(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
            plan = data["plan"]
            i, n = (int(x) for x in data["shard"])
            tasks = tuple((str(t), str(s)) for t, s in plan["tasks"])
            manifest = cls(
                run=str(data["run"]),
                shard=(i, n),
                tasks=tasks,
                trials=int(plan["trials"]),
                batch_size=int(plan["batch_size"]),
                order=str(plan.get("order", "task")),
                policy=str(data.get("policy", "")),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: not a shard manifest ({exc})") from None
        if not (0 <= i < n and manifest.trials >= 1 and manifest.batch_size >= 1 and tasks):
            raise UsageError(f"{where}: not a shard manifest (shard, trials or batch size invalid)")
        if manifest.order not in ("task", "seed"):
            raise UsageError(f"{where}: not a shard manifest (order {manifest.order!r})")
        return manifest


def write_manifest(episodes: str | Path, manifest: ShardManifest) -> Path:
    """Write the manifest beside `episodes` (atomically); returns its path."""
    from vla_eval.results import write_json

    path = manifest_path(episodes)
    write_json(path, manifest.to_dict())
    return path


def read_manifest(episodes: str | Path) -> ShardManifest | None:
    """The manifest beside `episodes`, or None when the file has none (an unsharded run)."""
    from vla_eval.inputs import load_json_file

    path = manifest_path(episodes)
    if not path.exists():
        return None
    return ShardManifest.from_dict(load_json_file(path), str(path))


def _describe_keys(keys: Sequence[Key], limit: int = 6) -> str:
    """``pick/seen seeds 3, 4, 9; place/unseen seed 0`` (at most `limit` keys shown)."""
    by_task: dict[str, list[int]] = defaultdict(list)
    for task, split, seed in keys[:limit]:
        by_task[f"{task}/{split}"].append(seed)
    parts = [
        f"{t} seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}" for t, s in by_task.items()
    ]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more


def check_shards(
    files: Iterable[str | Path],
    present: Mapping[str, Container[Key]],
    *,
    allow_mixed_runs: bool = False,
) -> list[str]:
    """Problems with a set of shard files: missing shards, missing episodes, mixed runs.

    Args:
        files: the episodes files given to a report; those without a manifest are ignored.
        present: episodes file (as str) -> the keys it holds.
        allow_mixed_runs: accept manifests of different runs (each is checked on its own).

    Returns:
        One sentence per problem (empty when every planned episode is there).

    Raises:
        UsageError: files from different runs, unless ``allow_mixed_runs``; or two files
            claiming the same shard of one run.
    """
    runs: dict[str, dict[int, tuple[str, ShardManifest]]] = defaultdict(dict)
    for f in files:
        manifest = read_manifest(f)
        if manifest is None:
            continue
        seen = runs[manifest.run]
        i = manifest.shard[0]
        if i in seen and seen[i][1] != manifest:
            raise UsageError(f"{seen[i][0]} and {f} are two different shards claiming shard {i}")
        if i in seen:
            raise UsageError(f"{seen[i][0]} and {f} are the same shard {i}/{manifest.shard[1]}")
        seen[i] = (str(f), manifest)
    if len(runs) > 1 and not allow_mixed_runs:
        names = ", ".join(sorted(runs))
        raise UsageError(
            f"the files come from {len(runs)} different runs ({names}); "
            "report them separately, or pass --allow-mixed-runs"
        )
    problems = []
    for run, shards in runs.items():
        count = next(iter(shards.values()))[1].shard[1]
        for i in sorted(set(range(count)) - set(shards)):
            template = next(iter(shards.values()))[1]
            planned = ShardManifest(
                run,
                (i, count),
                template.tasks,
                template.trials,
                template.batch_size,
                template.order,
            ).planned()
            problems.append(
                f"run {run}: shard {i}/{count} is missing ({planned} planned episodes; "
                "no episodes file with its manifest was given)"
            )
        for i, (f, manifest) in sorted(shards.items()):
            have = present.get(f, set())
            missing = [k for k in manifest.keys() if k not in have]
            if missing:
                problems.append(
                    f"{f} (shard {i}/{count}) lacks {len(missing)} of its "
                    f"{manifest.planned()} planned episodes: {_describe_keys(missing)}"
                )
    return problems


def shard_problems(files: Iterable[str | Path], *, allow_mixed_runs: bool = False) -> list[str]:
    """`check_shards` over episodes files, reading the keys of those that have a manifest.

    Files without a manifest (unsharded runs, other tools' files) are not read again.
    """
    from vla_eval.episodes.counts import episode_keys

    files = [Path(f) for f in files]
    present: dict[str, Any] = {
        str(f): episode_keys(f) for f in files if manifest_path(f).exists() and f.is_file()
    }
    return check_shards(files, present, allow_mixed_runs=allow_mixed_runs)
