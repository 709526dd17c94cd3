"""The default detectors: one per symptom of the failure table, with settable thresholds.

`default_detectors` is the one door from per-symptom threshold overrides to a list of
detectors; the live monitor, the offline runner and the reference trainer all build
theirs here. numpy only (through the detectors); must not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from vla_eval.diagnose.detectors.action_jitter import ActionJitter
from vla_eval.diagnose.detectors.base import Detector
from vla_eval.diagnose.detectors.forgetting import CatastrophicForgetting
from vla_eval.diagnose.detectors.gradient_explosion import GradientExplosion
from vla_eval.diagnose.detectors.mode_collapse import ModeCollapse
from vla_eval.diagnose.detectors.overfitting import Overfitting
from vla_eval.diagnose.detectors.task_imbalance import TaskImbalance
from vla_eval.errors import UsageError

#: Threshold overrides for runs whose per-task errors are action cross-entropies (the
#: reference trainer's). Every task's loss sits on a shared floor (the entropy the bins
#: cannot remove), so a task the sampler starves shows as a ratio of about 1.3 where
#: squared errors would show 2 or more.
CROSS_ENTROPY_THRESHOLDS: Mapping[str, Mapping[str, Any]] = {
    "task_imbalance": {"error_ratio": 1.2},
}

DETECTORS: Mapping[str, type[Detector]] = {
    cls.symptom: cls
    for cls in (
        GradientExplosion,
        ModeCollapse,
        ActionJitter,
        Overfitting,
        CatastrophicForgetting,
        TaskImbalance,
    )
}


def default_detectors(
    thresholds: Mapping[str, Mapping[str, Any]] | None = None,
    task_counts: Mapping[str, float] | None = None,
) -> list[Detector]:
    """One detector per symptom with default thresholds, overridden per symptom.

    Args:
        thresholds: symptom -> {field: value}, e.g. ``{"overfitting": {"rise": 0.2}}``.
        task_counts: dataset counts per task, used by the task-imbalance fix.

    Raises:
        UsageError: an unknown symptom or threshold name.
    """
    thresholds = dict(thresholds or {})
    unknown = set(thresholds) - set(DETECTORS)
    if unknown:
        raise UsageError(
            f"unknown symptom(s) in thresholds: {sorted(unknown)}; expected {sorted(DETECTORS)}"
        )
    out = []
    for symptom, cls in DETECTORS.items():
        kwargs = dict(thresholds.get(symptom, {}))
        if symptom == "task_imbalance" and task_counts is not None:
            kwargs.setdefault("task_counts", dict(task_counts))
        allowed = {f.name for f in fields(cls) if f.init}
        bad = set(kwargs) - allowed
        if bad:
            raise UsageError(
                f"unknown threshold(s) for {symptom}: {sorted(bad)}; settable: {sorted(allowed)}"
            )
        out.append(cls(**kwargs))
    return out
