"""Task imbalance: rare tasks' error staying far above common tasks' error.

The fix suggests sampling temperatures, with the probabilities p_i ∝ n_i^(1/T) they
give for the dataset counts or, without them, for the observed sampling shares
(fractions, not counts). numpy only; must not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from vla_eval.diagnose.detectors.base import Detector, Latch, Signals
from vla_eval.diagnose.findings import Finding
from vla_eval.formatting import number, pct
from vla_eval.stats.sampling import temperature_weights


def temperature_probabilities(counts: Mapping[str, float], temperature: float) -> dict[str, float]:
    """Task sampling probabilities p_i proportional to n_i^(1/T), by task name.

    `vla_eval.stats.sampling.temperature_weights` over a mapping; T = inf is uniform
    over the tasks with data.

    >>> p = temperature_probabilities({"pick": 50000, "place": 30000, "stack": 2000, "pour": 500}, 2)
    >>> {k: round(v, 4) for k, v in p.items()}
    {'pick': 0.482, 'place': 0.3734, 'stack': 0.0964, 'pour': 0.0482}
    """
    names = list(counts)
    p = temperature_weights([float(counts[k]) for k in names], temperature)
    return dict(zip(names, p.tolist(), strict=True))


def _shares_text(p: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {number(v)}" for k, v in p.items())


@dataclass
class TaskImbalance(Detector):
    """Rare tasks' error staying far above common tasks' error.

    Per-task errors are accumulated with exponential forgetting (``decay`` per
    observation). A task is rare when its share of recent samples is below
    ``rare_share / n_tasks``, common when at least ``1 / n_tasks``. Trips when a rare
    task's mean error is at least ``error_ratio`` times the common tasks' and, when
    per-sample variances are known, the difference is at least ``min_z`` standard
    errors.

    Attributes:
        error_ratio: rare/common error ratio that trips.
        rare_share: a task with share below rare_share / n_tasks counts as rare.
        min_samples: effective samples a rare task needs before it is judged.
        min_z: z-score of the difference required when variances are known.
        decay: forgetting factor per observation (0.98: about the last 50).
        temperatures: sampling temperatures suggested in the fix, in order.
        task_counts: dataset counts per task for the fix (else observed shares).
        patience: consecutive tripped checks needed to fire.
        rearm_after: consecutive clear checks after which it can fire again.
    """

    symptom: ClassVar[str] = "task_imbalance"
    error_ratio: float = 2.0
    rare_share: float = 0.5
    min_samples: float = 8.0
    min_z: float = 3.0
    decay: float = 0.98
    temperatures: tuple[float, ...] = (2.0, 5.0)
    task_counts: Mapping[str, float] | None = None
    patience: int = 3
    rearm_after: int = 10
    _stats: dict = field(default_factory=dict, init=False, repr=False)
    _latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)

    def update(self, signals: Signals) -> Finding | None:
        """Accumulate one step's per-task errors and judge them."""
        if not signals.task_errors:
            return None
        for stats in self._stats.values():
            stats[:] = [self.decay * v for v in stats]
        for task, (n, total, total_sq) in signals.task_errors.items():
            if n <= 0 or not math.isfinite(total):
                continue
            stats = self._stats.setdefault(str(task), [0.0, 0.0, 0.0, 0.0])
            stats[0] += n
            stats[1] += total
            if total_sq is not None and math.isfinite(total_sq):
                stats[2] += total_sq
                stats[3] += n  # samples that came with a variance
        verdict = self._judge()
        if not self._latch.update(verdict is not None):
            return None
        return self._report(signals, *verdict)

    def _judge(self) -> tuple | None:
        k = len(self._stats)
        if k < 2:
            return None
        n = {t: s[0] for t, s in self._stats.items()}
        total = sum(n.values())
        share = {t: v / total for t, v in n.items()}
        common = [t for t in n if share[t] >= 1.0 / k]
        rare = [t for t in n if share[t] < self.rare_share / k and n[t] >= self.min_samples]
        if not common or not rare:
            return None
        nc = sum(n[t] for t in common)
        err_c = sum(self._stats[t][1] for t in common) / nc
        worst = None
        for t in rare:
            err_r = self._stats[t][1] / n[t]
            ratio = err_r / max(err_c, 1e-12)
            if ratio < self.error_ratio:
                continue
            z = self._z(t, common, err_r, err_c)
            if z is not None and z < self.min_z:
                continue
            if worst is None or ratio > worst[1]:
                worst = (t, ratio, err_r, z)
        if worst is None:
            return None
        return (*worst, err_c, common, rare, share)

    def _z(self, task: str, common: list[str], err_r: float, err_c: float) -> float | None:
        def var(t: str, mean: float) -> tuple[float, float] | None:
            s = self._stats[t]
            if s[3] < 2:
                return None
            return max(s[2] / s[3] - mean * mean, 0.0), s[3]

        vr = var(task, err_r)
        vc = [var(t, err_c) for t in common]
        if vr is None or any(v is None for v in vc):
            return None
        nc = sum(v[1] for v in vc)
        var_c = sum(v[0] * v[1] for v in vc) / nc
        se = math.sqrt(vr[0] / vr[1] + var_c / nc)
        return math.inf if se == 0 else (err_r - err_c) / se

    def _report(self, signals, task, ratio, err_r, z, err_c, common, rare, share) -> Finding:
        counts = dict(self.task_counts) if self.task_counts else share
        source = "dataset counts" if self.task_counts else "observed sampling shares"
        now = temperature_probabilities(counts, 1.0)
        message = (
            f"rare tasks lag: {task} error {number(err_r, 3)} is {number(ratio)}x the common "
            f"tasks' {number(err_c, 3)} ({', '.join(common)}); {task} gets "
            f"{pct(share[task], digits=None)} of the samples, "
            f"{', '.join(f'{t} {pct(share[t], digits=None)}' for t in common)}."
        )
        options = []
        for temp in self.temperatures:
            p = temperature_probabilities(counts, temp)
            label = "inf" if math.isinf(temp) else number(temp)
            options.append(f"T={label} gives {_shares_text(p)}")
        fix = (
            f"sample tasks with temperature, p ~ n^(1/T) (from {source}; T=1 is now: "
            f"{_shares_text(now)}): try {options[0]}"
            + (f"; if {task} still lags, {'; '.join(options[1:])}" if len(options) > 1 else "")
            + ". Per-sample weight n_task^(1/T - 1) does the same with a weighted sampler."
        )
        evidence = {
            "task": task,
            "error": err_r,
            "common_error": err_c,
            "ratio": ratio,
            "z": z,
            "shares": share,
            "rare_tasks": rare,
            "common_tasks": common,
            "suggested_temperature": self.temperatures[0] if self.temperatures else None,
        }
        return self._finding(signals, "warning", message, fix, evidence)
