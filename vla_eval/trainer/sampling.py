"""Multi-task data mixing: temperature sampling, per-task loss weights, curricula.

Robot datasets are badly imbalanced across tasks (the recipe's example: pick 50,000,
place 30,000, stack 2,000, pour 500). This module implements the recipe's three
remedies: temperature sampling ``p_i ∝ n_i^(1/T)`` (T = 1 is the data ratio, T = inf
uniform over tasks, with its own code path rather than ``1/inf`` arithmetic), loss
weights ``∝ 1/n_i``, and curricula whose task set grows with training progress, plus
a sampler that draws batches of example indices from an explicit
``np.random.Generator`` or ``torch.Generator``. Everything is vectorised over the
task-id array: no Python loop over the dataset. It needs numpy only; torch is used
only when the caller passes a ``torch.Generator``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eval.errors import UsageError

INF = math.inf


def parse_temperature(value: str | float) -> float:
    """Parse a sampling temperature: a positive number or ``inf``.

    >>> parse_temperature("2"), parse_temperature("inf")
    (2.0, inf)
    """
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"temperature must be a positive number or 'inf', got {value!r}") from None
    return check_temperature(t)


def check_temperature(temperature: float) -> float:
    """Return `temperature` as a float if it is > 0 (inf allowed), else raise UsageError."""
    t = float(temperature)
    if math.isnan(t) or t <= 0:
        raise UsageError(f"temperature must be > 0 (or inf), got {temperature!r}")
    return t


def parse_counts(text: str) -> dict[str, int]:
    """Parse ``"pick=50000,place=30000"`` into an ordered {task: count} dict.

    >>> parse_counts("pick=50000, place=30000")
    {'pick': 50000, 'place': 30000}
    """
    counts: dict[str, int] = {}
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise UsageError(f"counts must look like task=count[,task=count...], got {item!r}")
        try:
            n = int(value)
        except ValueError:
            raise UsageError(f"count for task {name!r} is not an integer: {value!r}") from None
        if name in counts:
            raise UsageError(f"task {name!r} appears twice in the counts")
        counts[name] = n
    if not counts:
        raise UsageError("no task counts given (expected task=count[,task=count...])")
    return check_counts(counts)


def check_counts(counts: Mapping[str, int] | Sequence[int] | np.ndarray) -> Any:
    """Validate task counts: non-negative integers, at least one positive. Returns them."""
    values = (
        list(counts.values()) if isinstance(counts, Mapping) else list(np.asarray(counts).ravel())
    )
    names = list(counts) if isinstance(counts, Mapping) else list(range(len(values)))
    if not values:
        raise UsageError("no task counts given")
    for name, v in zip(names, values, strict=True):
        if isinstance(v, (bool, np.bool_)) or float(v) != int(v):
            raise UsageError(f"count for task {name!r} must be an integer, got {v!r}")
        if v < 0:
            raise UsageError(f"count for task {name!r} is negative ({v})")
    if sum(int(v) for v in values) == 0:
        raise UsageError("every task count is zero: there is nothing to sample")
    return counts


def temperature_probs(counts: Sequence[int] | np.ndarray, temperature: float) -> np.ndarray:
    """Probability of drawing each task, ``p_i ∝ n_i^(1/T)``.

    T = 1 reproduces the data ratio, T > 1 flattens it toward rare tasks, T = inf is
    uniform over the tasks that have data, T < 1 sharpens toward common tasks. A task
    with no examples always gets 0. Computed in log space, so T = 0.5 with large
    counts does not overflow.

    Args:
        counts: (K,) examples per task.
        temperature: T > 0, or ``math.inf``.

    Returns:
        (K,) probabilities summing to 1.

    >>> temperature_probs([50000, 30000, 2000, 500], 2).round(4).tolist()
    [0.482, 0.3734, 0.0964, 0.0482]
    """
    n = np.asarray(check_counts(counts), dtype=np.float64)
    t = check_temperature(temperature)
    present = n > 0
    if math.isinf(t):
        return present / present.sum()
    logits = np.where(present, np.log(np.where(present, n, 1.0)) / t, -np.inf)
    logits -= logits[present].max()
    p = np.exp(logits)
    return p / p.sum()


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


def task_loss_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Per-task loss weights ``∝ 1/n_i``, normalised to sum to 1 over tasks with data.

    >>> task_loss_weights([1, 3]).tolist()
    [0.75, 0.25]
    """
    n = np.asarray(check_counts(counts), dtype=np.float64)
    inv = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
    return inv / inv.sum()


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


def mixing_table(counts: Mapping[str, int], temperatures: Sequence[float]) -> dict[str, Any]:
    """Everything `vla-eval sampling` prints, as plain data.

    Args:
        counts: {task: examples}.
        temperatures: temperatures to tabulate (``math.inf`` allowed).

    Returns:
        dict with ``tasks``, ``counts``, ``data_share``, ``loss_weights`` and one entry
        per temperature with its ``probabilities`` and per-example ``sample_weights``
        (relative to an example of the largest task).
    """
    check_counts(counts)
    names = list(counts)
    n = np.array([counts[k] for k in names], dtype=np.float64)
    rows = []
    for t in temperatures:
        t = check_temperature(t)
        p = temperature_probs(n, t)
        with np.errstate(divide="ignore"):
            rel = np.where(n > 0, p / np.where(n > 0, n, 1.0), 0.0)
        rel = rel / rel[np.argmax(n)]
        rows.append(
            {
                "temperature": "inf" if math.isinf(t) else t,
                "probabilities": dict(zip(names, p.tolist(), strict=True)),
                "sample_weights": dict(zip(names, rel.tolist(), strict=True)),
            }
        )
    return {
        "tasks": names,
        "counts": {k: int(counts[k]) for k in names},
        "data_share": dict(zip(names, (n / n.sum()).tolist(), strict=True)),
        "loss_weights": dict(zip(names, task_loss_weights(n).tolist(), strict=True)),
        "temperatures": rows,
    }


def format_mixing_table(table: Mapping[str, Any]) -> str:
    """Human-readable rendering of `mixing_table` output: one row per task."""
    names = table["tasks"]
    temps = table["temperatures"]
    width = max(6, *(len(n) for n in names))
    head = f"{'task':<{width}} {'count':>9} {'share':>7}"
    head += "".join(f" {'p(T=' + _fmt_t(r['temperature']) + ')':>10}" for r in temps)
    head += f" {'loss w':>7}"
    lines = [head]
    for name in names:
        line = f"{name:<{width}} {table['counts'][name]:>9d} {table['data_share'][name]:>7.4f}"
        line += "".join(f" {r['probabilities'][name]:>10.4f}" for r in temps)
        line += f" {table['loss_weights'][name]:>7.4f}"
        lines.append(line)
    return "\n".join(lines)


def _fmt_t(t: float | str) -> str:
    return "inf" if t == "inf" else f"{float(t):g}"
