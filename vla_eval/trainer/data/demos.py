"""Expert demonstrations: episode seeds, the `Demos` record and `collect_demos`.

`collect_demos` runs the scripted expert of the tabletop world for a number of
episodes per task family on a split, with the demonstration defects a `DemoQuality`
injects, stepping many environments together; every episode depends only on (seed,
family, split, stream), never on how the episodes were batched. numpy only; must not
import torch or the rest of the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from vla_eval.envs import tabletop as tt
from vla_eval.envs.base import FAMILIES, SPLITS
from vla_eval.errors import UsageError

#: The recipe's imbalanced demonstration counts (RECIPE.md, section 1).
RECIPE_COUNTS: dict[str, int] = {"pick": 50000, "place": 30000, "stack": 2000, "pour": 500}
#: Seed streams: training episodes get even seeds, held-out episodes odd ones.
TRAIN_STREAM, HELDOUT_STREAM = 0, 1


def scaled_counts(
    scale: float, counts: Mapping[str, int] | None = None, minimum: int = 1
) -> dict[str, int]:
    """Per-task episode counts scaled down from `RECIPE_COUNTS` (or ``counts``).

    Each count is ``round(n * scale)``, at least ``minimum``, so the imbalance survives.

    >>> scaled_counts(0.01)
    {'pick': 500, 'place': 300, 'stack': 20, 'pour': 5}
    """
    if not (np.isfinite(scale) and scale > 0):
        raise UsageError(f"scale must be a positive number, got {scale}")
    counts = dict(RECIPE_COUNTS if counts is None else counts)
    return {task: max(int(minimum), round(n * scale)) for task, n in counts.items()}


def _check_counts(counts: Mapping[str, int]) -> dict[str, int]:
    out = {}
    for task, n in counts.items():
        if task not in FAMILIES:
            raise UsageError(
                f"unknown task family {task!r}; expected some of {', '.join(FAMILIES)}"
            )
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise UsageError(f"the count for {task} must be a non-negative integer, got {n!r}")
        out[task] = int(n)
    if sum(out.values()) == 0:
        raise UsageError("counts ask for no demonstrations at all")
    return out


def episode_seeds(
    family: str, split: str, count: int, seed: int, stream: int = TRAIN_STREAM
) -> np.ndarray:
    """Distinct episode seeds for one family and split.

    Training seeds are even and held-out seeds odd, so a held-out episode never
    repeats a training one whatever base seeds are chosen.
    """
    if stream not in (TRAIN_STREAM, HELDOUT_STREAM):
        raise UsageError(f"stream must be 0 (training) or 1 (held out), got {stream!r}")
    rng = np.random.default_rng([int(seed), FAMILIES.index(family), SPLITS.index(split), 17])
    return 2 * rng.choice(2**30, size=count, replace=False).astype(np.int64) + stream


_STEP_FIELDS = ("images", "states", "actions", "episode", "step")


@dataclass
class Demos:
    """Recorded episodes; step arrays are concatenated episode after episode.

    Step arrays (S = total steps): ``images`` (S, 64, 64, 3) uint8 observed before
    acting, ``states`` (S, 5) float32, ``actions`` (S, 7) float32, ``episode`` (S,)
    int64 episode number, ``step`` (S,) int64 step within the episode.

    Episode arrays (E episodes): ``family`` and ``split`` (E,) int64 indices into
    `FAMILIES` / `SPLITS`, ``seed`` (E,) int64, ``instruction`` (E,) str,
    ``success`` (E,) bool, ``length`` (E,) int64, and the defects the generator
    injected (``injected_failed``, ``injected_idle``, ``injected_jerky``, (E,) bool),
    kept to check the filter, never used by it.
    """

    images: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    family: np.ndarray
    split: np.ndarray
    seed: np.ndarray
    instruction: np.ndarray
    success: np.ndarray
    length: np.ndarray
    injected_failed: np.ndarray
    injected_idle: np.ndarray
    injected_jerky: np.ndarray

    @property
    def num_episodes(self) -> int:
        return int(self.length.size)

    @property
    def num_steps(self) -> int:
        return int(self.episode.size)

    def starts(self) -> np.ndarray:
        """(E,) index of each episode's first step."""
        return (np.cumsum(self.length) - self.length).astype(np.int64)

    def select(self, keep: np.ndarray) -> Demos:
        """The episodes where ``keep`` (E,) is True, renumbered 0..k-1 in order."""
        keep = np.asarray(keep, bool)
        step_keep = keep[self.episode]
        renumber = np.cumsum(keep) - 1
        per_episode = {
            f.name: getattr(self, f.name)[keep] for f in fields(self) if f.name not in _STEP_FIELDS
        }
        return Demos(
            images=self.images[step_keep],
            states=self.states[step_keep],
            actions=self.actions[step_keep],
            episode=renumber[self.episode[step_keep]],
            step=self.step[step_keep],
            **per_episode,
        )


def collect_demos(
    counts: Mapping[str, int],
    split: str = "seen",
    quality: tt.DemoQuality | None = None,
    seed: int = 0,
    num_envs: int = 64,
    progress: bool = False,
    stream: int = TRAIN_STREAM,
) -> Demos:
    """Run the scripted expert for ``counts[family]`` episodes of each family on ``split``.

    Args:
        counts: episodes per task family, e.g. ``scaled_counts(0.01)``.
        split: "seen" for training demonstrations, "unseen" for held-out conditions.
        quality: demonstration defects to inject (default: clean).
        seed: base seed; episodes depend only on (seed, family, split, stream).
        num_envs: environments stepped together.
        progress: show a tqdm bar on stderr.
        stream: 0 for training episodes, 1 for held-out ones (disjoint seeds).

    Returns:
        Every episode, successful or not (see `filter_demos`).
    """
    counts = _check_counts(counts)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if num_envs < 1:
        raise UsageError(f"num_envs must be at least 1, got {num_envs}")
    quality = tt.DemoQuality() if quality is None else quality
    plan_tasks: list[str] = []
    plan_seeds: list[np.ndarray] = []
    for family, n in counts.items():
        plan_tasks += [f"{family}/{split}"] * n
        plan_seeds.append(episode_seeds(family, split, n, seed, stream))
    all_seeds = np.concatenate(plan_seeds)
    env = tt.TabletopEnv()
    expert = tt.ScriptedExpert(quality)
    records: list[tuple[np.ndarray, ...]] = []
    meta: dict[str, list] = {k: [] for k in ("instruction", "success", "failed", "idle", "jerky")}
    batches = range(0, len(plan_tasks), num_envs)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"demos ({split})", unit="batch", leave=False)
    for start in batches:
        seeds = all_seeds[start : start + num_envs]
        _run_batch(env, expert, seeds, plan_tasks[start : start + num_envs], start, records, meta)
    images, states, actions, episode, step = (np.concatenate(x) for x in zip(*records, strict=True))
    order = np.lexsort((step, episode))
    episode = episode[order]
    family_names = [t.split("/")[0] for t in plan_tasks]
    return Demos(
        images=images[order],
        states=states[order],
        actions=actions[order],
        episode=episode,
        step=step[order],
        family=np.array([FAMILIES.index(f) for f in family_names], np.int64),
        split=np.full(len(plan_tasks), SPLITS.index(split), np.int64),
        seed=all_seeds,
        instruction=np.array(meta["instruction"], dtype=str),
        success=np.concatenate(meta["success"]),
        length=np.bincount(episode, minlength=len(plan_tasks)).astype(np.int64),
        injected_failed=np.concatenate(meta["failed"]),
        injected_idle=np.concatenate(meta["idle"]),
        injected_jerky=np.concatenate(meta["jerky"]),
    )


def _run_batch(
    env: tt.TabletopEnv,
    expert: tt.ScriptedExpert,
    seeds: np.ndarray,
    tasks: list[str],
    first_id: int,
    records: list[tuple[np.ndarray, ...]],
    meta: dict[str, list],
) -> None:
    """Run one batch of episodes to the end; append its steps to `records`, its episodes to `meta`."""
    obs = env.reset(seeds, tasks)
    expert.reset(env, seeds)
    ids = np.arange(first_id, first_id + seeds.size)
    done = np.zeros(seeds.size, bool)
    while not done.all():
        actions = expert.act(env)
        live = ~done
        records.append(
            (
                obs["image"][live],
                obs["state"][live],
                actions[live].astype(np.float32),
                ids[live],
                env.steps[live].astype(np.int64),
            )
        )
        obs, _, done, info = env.step(actions)
    meta["instruction"] += obs["instruction"]
    meta["success"].append(info["success"])
    meta["failed"].append(expert.failed)
    meta["idle"].append(expert.idle)
    meta["jerky"].append(expert.jerky)
