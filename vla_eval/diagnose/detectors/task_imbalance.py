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
    temperatures: tuple[float, ...] = (2.0, 5.0, 10.0)
    task_counts: Mapping[str, float] | None = None
    patience: int = 3
    rearm_after: int = 10
    heldout_gap: float = 0.1
    _stats: dict = field(default_factory=dict, init=False, repr=False)
    _failed: list = field(default_factory=list, init=False, repr=False)
    _latch: Latch = field(init=False, repr=False)
    _heldout_latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)
        self._heldout_latch = Latch(1, 1)

    def update(self, signals: Signals) -> Finding | None:
        """Accumulate one step's per-task errors and judge them; judge an eval pass's
        per-task held-out loss or accuracy."""
        if signals.heldout_task_loss or signals.heldout_task_accuracy:
            return self._update_heldout(signals)
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

    def _shares(self) -> dict[str, float]:
        """Each task's share of the recent training samples."""
        n = {t: st[0] for t, st in self._stats.items()}
        total = sum(n.values())
        return {t: v / total for t, v in n.items()} if total > 0 else {}

    def _update_heldout(self, signals: Signals) -> Finding | None:
        """Rare tasks whose held-out loss (or error rate) is far above common tasks'.

        A rare task's training error can look fine while its few demonstrations are
        memorised; its held-out error shows the imbalance. Rare and common are judged
        from the dataset counts when given, else from the observed sampling shares.
        """
        by_loss = signals.heldout_task_loss or {}
        by_acc = signals.heldout_task_accuracy or {}
        errors = {t: v for t, v in by_loss.items() if math.isfinite(v)}
        kind = "loss"
        if len(errors) < 2:
            errors, kind = {t: 1.0 - a for t, a in by_acc.items() if math.isfinite(a)}, "error rate"
        share = _normalised(self.task_counts) if self.task_counts else self._shares()
        share = {t: share[t] for t in errors if t in share}
        verdict = _heldout_verdict(errors, share, self.rare_share, self.error_ratio)
        if verdict is not None and kind == "error rate":
            task, _, err_r, err_c, _ = verdict
            verdict = verdict if err_r - err_c >= self.heldout_gap else None
        if not self._heldout_latch.update(verdict is not None):
            return None
        task, ratio, err_r, err_c, common = verdict
        train = self._train_ratio(task, common)
        hidden = (
            f"; its training error is only {number(train)}x theirs, so its few "
            "demonstrations are being memorised"
            if train is not None and train < self.error_ratio
            else ""
        )
        what = "of the demonstrations" if self.task_counts else "of the samples"
        shares = "" if task not in share else f" ({task}: {pct(share[task], digits=None)} {what})"
        message = (
            f"rare tasks lag on held-out data: {task} held-out {kind} {number(err_r, 3)} is "
            f"{number(ratio)}x the common tasks' {number(err_c, 3)} ({', '.join(common)})"
            f"{shares}{hidden}."
        )
        evidence = {
            "task": task,
            "heldout_error": err_r,
            "common_heldout_error": err_c,
            "ratio": ratio,
            "train_ratio": train,
            "signal": f"held-out {kind}",
            "common_tasks": common,
        }
        return self._finding_with_fix(signals, task, message, evidence, share)

    def _train_ratio(self, task: str, common: list[str]) -> float | None:
        stats = self._stats
        if task not in stats or not all(t in stats for t in common) or stats[task][0] <= 0:
            return None
        nc = sum(stats[t][0] for t in common)
        if nc <= 0:
            return None
        err_c = sum(stats[t][1] for t in common) / nc
        return (stats[task][1] / stats[task][0]) / max(err_c, 1e-12)

    def _current_temperature(self) -> float:
        """The temperature the loop samples with, in the units of the fix's counts."""
        if not self.task_counts:
            return 1.0  # the fix is computed from the shares the loop already samples
        t = self.context.temperature
        return 1.0 if t is None else float(t)

    def _suggestions(self) -> list[float]:
        """Temperatures above the current one and above every one that already failed."""
        tried = max([self._current_temperature(), *self._failed])
        ahead = [t for t in self.temperatures if t > tried]
        return ahead or ([] if math.isinf(tried) else [math.inf])

    def _report(self, signals, task, ratio, err_r, z, err_c, common, rare, share) -> Finding:
        message = (
            f"rare tasks lag: {task} error {number(err_r, 3)} is {number(ratio)}x the common "
            f"tasks' {number(err_c, 3)} ({', '.join(common)}); {task} gets "
            f"{pct(share[task], digits=None)} of the samples, "
            f"{', '.join(f'{t} {pct(share[t], digits=None)}' for t in common)}."
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
        }
        return self._finding_with_fix(signals, task, message, evidence, share)

    def _finding_with_fix(self, signals, task, message, evidence, share) -> Finding:
        """The finding with a fix suggesting temperatures the run has not shown to fail."""
        counts = dict(self.task_counts) if self.task_counts else share
        source = "dataset counts" if self.task_counts else "observed sampling shares"
        if not counts:
            fix = (
                f"sample {task} more often (temperature sampling, p ~ n^(1/T) with T > 1); "
                "pass task_counts= to Diagnose, or per-task losses to step(), for the shares "
                "each temperature gives."
            )
            return self._finding(signals, "warning", message, fix, evidence)
        current = self._current_temperature()
        temps = self._suggestions()
        self._failed.append(current)
        label = _t_label(current)
        now = f"T={label} is now: {_shares_text(temperature_probabilities(counts, current))}"
        failed = sorted({t for t in self._failed if t != current})
        if failed:
            now += f"; T={', '.join(_t_label(t) for t in failed)} already failed"
        options = [
            f"T={_t_label(t)} gives {_shares_text(temperature_probabilities(counts, t))}"
            for t in temps
        ]
        if options:
            fix = (
                f"sample tasks with a higher temperature, p ~ n^(1/T) (from {source}; {now}): "
                f"try {options[0]}"
                + (f"; if {task} still lags, {'; '.join(options[1:])}" if len(options) > 1 else "")
                + ". Per-sample weight n_task^(1/T - 1) does the same with a weighted sampler."
            )
        else:
            fix = (
                f"sampling is already uniform over tasks ({now}): oversample {task} beyond "
                "uniform (a per-sample weight above 1) and collect more demonstrations of it."
            )
        evidence["temperature"] = current
        evidence["suggested_temperature"] = temps[0] if temps else None
        return self._finding(signals, "warning", message, fix, evidence)


def _t_label(t: float) -> str:
    return "inf" if math.isinf(t) else number(t)


def _normalised(counts: Mapping[str, float]) -> dict[str, float]:
    total = float(sum(counts.values()))
    return {str(t): float(v) / total for t, v in counts.items()}


def _heldout_verdict(
    errors: Mapping[str, float], share: Mapping[str, float], rare_share: float, ratio_needed: float
) -> tuple | None:
    """(task, ratio, its error, common error, common tasks) of the worst lagging task.

    With shares, rare tasks (share below ``rare_share / k``) are compared with common
    ones (share at least ``1 / k``); without them, each task with the others' median.
    """
    k = len(errors)
    if len(share) == k and k >= 2:
        common = [t for t in errors if share[t] >= 1.0 / k]
        candidates = [t for t in errors if share[t] < rare_share / k]
    else:
        common, candidates = None, list(errors)
    worst = None
    for t in candidates:
        others = common if common is not None else [o for o in errors if o != t]
        if not others:
            continue
        err_c = sorted(errors[o] for o in others)[len(others) // 2]
        if common is not None:
            err_c = sum(errors[o] for o in others) / len(others)
        ratio = errors[t] / max(err_c, 1e-12)
        if ratio >= ratio_needed and (worst is None or ratio > worst[1]):
            worst = (t, ratio, errors[t], err_c, others)
    return worst
