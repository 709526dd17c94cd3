"""Multi-task data mixing in the trainer: per-example weights, curricula, the batch sampler.

Robot datasets are badly imbalanced across tasks (the recipe's example: pick 50,000,
place 30,000, stack 2,000, pour 500). The recipe's three remedies are temperature
sampling ``p_i ∝ n_i^(1/T)`` (the one implementation, `temperature_probs`, lives in
`vla_eval.stats.sampling`), loss weights ``∝ 1/n_i``, and curricula whose task set
grows with training progress. This module turns them into per-example sampling and
loss weights, a `Curriculum`, and a sampler that draws batches of example indices
from an explicit ``np.random.Generator`` or ``torch.Generator``. Everything is
vectorised over the task-id array: no Python loop over the dataset. It needs numpy
only; torch is used only when the caller passes a ``torch.Generator``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.stats.sampling import check_temperature, temperature_probs


def sample_weights(task_ids: Any, temperature: float) -> np.ndarray:
    """Per-example sampling weights that realise temperature sampling, normalised to sum 1.

    Each example of task i gets ``n_i^(1/T - 1)`` (``1/n_i`` at T = inf), so a task's
    examples together carry ``n_i^(1/T)``. The result can be fed to
    ``torch.utils.data.WeightedRandomSampler`` or ``rng.choice(p=...)``.

    Args:
        task_ids: (N,) task label of every example (ints or strings).
        temperature: T > 0 or ``math.inf``.

    Returns:
        (N,) float64 weights summing to 1.
    """
    ids = np.asarray(task_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise UsageError(f"task_ids must be a non-empty 1-D array, got shape {ids.shape}")
    t = check_temperature(temperature)
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    n = counts.astype(np.float64)
    if math.isinf(t):
        per_task = 1.0 / n
    else:
        # n^(1/T - 1) normalised in log space: exp of large negative/positive powers is safe.
        log_w = (1.0 / t - 1.0) * np.log(n)
        log_mass = log_w + np.log(n)
        per_task = np.exp(log_w - log_mass.max())
    w = per_task[inverse.ravel()]
    return w / w.sum()


def example_loss_weights(task_ids: Any) -> np.ndarray:
    """Per-example loss weights ``∝ 1/n_task`` scaled to mean 1 over the dataset.

    The weight of an example of task i is ``N / (K * n_i)`` (N examples, K tasks), so
    each task contributes equally to the loss and the overall loss scale is unchanged
    (the same formula as scikit-learn's ``class_weight="balanced"``).

    Args:
        task_ids: (N,) task label of every example.

    Returns:
        (N,) float64 weights with mean 1.
    """
    ids = np.asarray(task_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise UsageError(f"task_ids must be a non-empty 1-D array, got shape {ids.shape}")
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return ids.size / (counts.size * counts[inverse.ravel()].astype(np.float64))


# --- curriculum ---------------------------------------------------------------


@dataclass(frozen=True)
class Curriculum:
    """Task sets that grow with training progress (easy tasks first).

    Phase k starts at fraction ``starts[k]`` of training and adds ``tasks[k]`` to
    everything already active. The first phase starts at 0.

    Attributes:
        starts: (P,) strictly increasing start fractions in [0, 1), the first 0.
        tasks: (P,) tuple of task-name tuples, the tasks each phase adds.

    >>> c = Curriculum.staged([("pick", "place"), ("stack",), ("pour",)])
    >>> c.active(0.1), c.active(0.5), c.active(0.9)
    (('pick', 'place'), ('pick', 'place', 'stack'), ('pick', 'place', 'stack', 'pour'))
    """

    starts: tuple[float, ...]
    tasks: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not self.starts or len(self.starts) != len(self.tasks):
            raise UsageError("a curriculum needs one start fraction per phase, at least one phase")
        if self.starts[0] != 0:
            raise UsageError(f"the first curriculum phase must start at 0, not {self.starts[0]}")
        if any(not (0 <= s < 1) for s in self.starts) or any(
            b <= a for a, b in itertools.pairwise(self.starts)
        ):
            raise UsageError(
                f"curriculum starts must increase within [0, 1), got {list(self.starts)}"
            )
        seen: set[str] = set()
        for phase in self.tasks:
            if not phase:
                raise UsageError("every curriculum phase must add at least one task")
            for name in phase:
                if name in seen:
                    raise UsageError(f"task {name!r} is added twice in the curriculum")
                seen.add(name)

    @classmethod
    def staged(cls, phases: Sequence[Sequence[str]]) -> Curriculum:
        """Phases of equal length: with three phases, each third of training adds its tasks."""
        k = len(phases)
        if k == 0:
            raise UsageError("a curriculum needs at least one phase")
        return cls(tuple(i / k for i in range(k)), tuple(tuple(p) for p in phases))

    @classmethod
    def recipe_default(cls) -> Curriculum:
        """The recipe's example: {pick, place} for the first third, then + stack, then + pour."""
        return cls.staged([("pick", "place"), ("stack",), ("pour",)])

    @property
    def all_tasks(self) -> tuple[str, ...]:
        return tuple(name for phase in self.tasks for name in phase)

    def active(self, progress: float) -> tuple[str, ...]:
        """Tasks active at `progress` (fraction of training done, clipped to [0, 1])."""
        p = float(progress)
        if math.isnan(p):
            raise UsageError("training progress is NaN")
        phases = int(np.searchsorted(np.asarray(self.starts), min(max(p, 0.0), 1.0), side="right"))
        return tuple(name for phase in self.tasks[:phases] for name in phase)

    def mask(self, progress: float, task_names: Sequence[str]) -> np.ndarray:
        """(K,) bool over `task_names`: which are active at `progress`.

        A task the curriculum does not mention is never active; a curriculum task not
        in `task_names` is an error (a typo would otherwise silently drop it).
        """
        missing = [t for t in self.all_tasks if t not in task_names]
        if missing:
            raise UsageError(f"curriculum names tasks not in the data: {', '.join(missing)}")
        on = set(self.active(progress))
        return np.array([name in on for name in task_names], dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {"starts": list(self.starts), "tasks": [list(p) for p in self.tasks]}


# --- sampler ------------------------------------------------------------------


class TaskBalancedSampler:
    """Draws batches of example indices with task probabilities ``∝ n_i^(1/T)``.

    Each draw picks a task from the temperature distribution (restricted to the
    curriculum's active tasks, renormalised), then an example of that task uniformly.
    With ``stratified=True`` the batch's task counts are fixed to floor or ceil of
    ``batch_size * p_i`` by systematic sampling, which keeps rare tasks present in
    every batch instead of in expectation only; the marginal probabilities are the
    same.

    Args:
        task_ids: (N,) task label of every example (ints or strings).
        temperature: T > 0 or ``math.inf``.
        curriculum: optional `Curriculum` over the task labels (strings).
        stratified: systematic rather than independent task draws.

    Example:
        >>> ids = np.array(["pick"] * 90 + ["pour"] * 10)
        >>> s = TaskBalancedSampler(ids, temperature=math.inf)
        >>> idx = s.sample(1000, np.random.default_rng(0))
        >>> round(float(np.mean(ids[idx] == "pour")), 1)
        0.5
    """

    def __init__(
        self,
        task_ids: Any,
        temperature: float = 1.0,
        curriculum: Curriculum | None = None,
        stratified: bool = False,
    ) -> None:
        ids = np.asarray(task_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise UsageError(f"task_ids must be a non-empty 1-D array, got shape {ids.shape}")
        self.temperature = check_temperature(temperature)
        self.curriculum = curriculum
        self.stratified = bool(stratified)
        self.tasks, inverse, self.counts = np.unique(ids, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        # Indices grouped by task: task k's examples are order[offsets[k]:offsets[k] + counts[k]].
        self._order = np.argsort(inverse, kind="stable")
        self._offsets = np.r_[0, np.cumsum(self.counts)[:-1]]
        self.base_probs = temperature_probs(self.counts, self.temperature)
        if curriculum is not None:
            curriculum.mask(1.0, [str(t) for t in self.tasks])  # validates task names once

    def probs(self, progress: float = 1.0) -> np.ndarray:
        """(K,) task probabilities at `progress`, over `self.tasks` (sorted labels)."""
        if self.curriculum is None:
            return self.base_probs
        on = self.curriculum.mask(progress, [str(t) for t in self.tasks])
        if not on.any():
            raise UsageError(f"no task is active at progress {progress}")
        p = np.where(on, self.base_probs, 0.0)
        return p / p.sum()

    def sample(self, batch_size: int, rng: Any, progress: float = 1.0) -> np.ndarray:
        """Indices (batch_size,) int64 into the dataset.

        Args:
            batch_size: examples per batch, >= 1.
            rng: ``np.random.Generator`` or ``torch.Generator`` (the only source of
                randomness, so a seeded run repeats exactly).
            progress: fraction of training done, for the curriculum.
        """
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise UsageError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        p = self.probs(progress)
        u_task, u_item = _uniforms(rng, batch_size)
        cdf = np.cumsum(p)
        cdf[-1] = 1.0
        if self.stratified:
            # Systematic sampling: one offset, evenly spaced points through the CDF.
            points = (u_task[0] + np.arange(batch_size)) / batch_size
        else:
            points = u_task
        task = np.searchsorted(cdf, points, side="right")
        task = np.minimum(task, p.size - 1)
        # Guard against landing on a zero-probability task through rounding at a CDF step.
        task = np.where(p[task] > 0, task, np.argmax(p))
        within = np.minimum((u_item * self.counts[task]).astype(np.int64), self.counts[task] - 1)
        return self._order[self._offsets[task] + within].astype(np.int64)


def _uniforms(rng: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two (size,) arrays of U[0, 1) draws from a numpy or torch generator."""
    if isinstance(rng, np.random.Generator):
        u = rng.random((2, size))
        return u[0], u[1]
    if type(rng).__module__.startswith("torch") and hasattr(rng, "manual_seed"):
        import torch

        u = torch.rand((2, size), generator=rng, dtype=torch.float64).numpy()
        return u[0], u[1]
    raise UsageError(
        f"rng must be a numpy.random.Generator or torch.Generator, got {type(rng).__name__}"
    )
