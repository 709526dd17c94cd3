"""Findings: what a detector reports, and the failure table it reports against.

A `Finding` names one of the six symptoms of the classic VLA failure table (or
``under_training``, which the jitter detector tells apart from jitter), the step
it was seen at, how serious it is, what was measured and the concrete change to make.
It is printable ("step 812 gradient_explosion: ... Fix: ...") and JSON-serialisable.
This module is plain standard library: it must not import numpy or torch, so reports
that only read findings stay light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from vla_eval.errors import DataError

Symptom = Literal[
    "mode_collapse",
    "catastrophic_forgetting",
    "action_jitter",
    "overfitting",
    "gradient_explosion",
    "task_imbalance",
    "under_training",
]
Severity = Literal["warning", "critical"]

SYMPTOMS: tuple[str, ...] = get_args(Symptom)
SEVERITIES: tuple[str, ...] = get_args(Severity)

# The failure table (RECIPE.md): what a user sees, and the generic remedy. Detectors
# turn the remedy into a concrete change using the numbers they measured.
FAILURE_TABLE: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "mode_collapse": ("all predictions identical", "lower LR, add noise"),
        "catastrophic_forgetting": (
            "vision-language ability degrades",
            "keep web data in the mix, use LoRA",
        ),
        "action_jitter": ("robot vibrates in place", "smooth actions, larger chunks"),
        "overfitting": ("low train loss, high eval loss", "more data, augmentation"),
        "gradient_explosion": ("NaN losses", "gradient clipping, lower LR"),
        "task_imbalance": ("good at common tasks, bad at rare", "temperature sampling"),
        # not in the lecture's table: zig-zag chunks of a model that has not learned
        # them yet look like jitter, but the remedy is the opposite of smoothing
        "under_training": (
            "predictions zig-zag while the loss is still falling or barely moving",
            "train longer, raise the LR of the trainable part",
        ),
    }
)


@dataclass(frozen=True)
class Finding:
    """One symptom of the failure table, seen at one step.

    Attributes:
        symptom: one of `SYMPTOMS`.
        step: the training step it was seen at; None for findings about rollouts
            that are not tied to a training step.
        severity: "warning" (training can go on, but should be changed) or
            "critical" (the run is broken, e.g. NaN loss).
        message: what was measured, with the numbers.
        fix: the failure table's remedy made concrete with the numbers seen; empty
            when the monitor was built with ``fixes=False``.
        evidence: the measured values that tripped the detector (JSON types).

    >>> f = Finding("gradient_explosion", 812, "warning", "grad norm 3.1e4.", "clip at 1.0.")
    >>> print(f)
    step 812 gradient_explosion: grad norm 3.1e4. Fix: clip at 1.0.
    """

    symptom: Symptom
    step: int | None
    severity: Severity
    message: str
    fix: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.symptom not in SYMPTOMS:
            raise ValueError(f"unknown symptom {self.symptom!r}; expected one of {SYMPTOMS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}; expected one of {SEVERITIES}")

    def __str__(self) -> str:
        where = "rollouts" if self.step is None else f"step {self.step}"
        text = f"{where} {self.symptom}: {self.message}"
        return f"{text} Fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (run it through `vla_eval.results.dumps` for strict JSON)."""
        return {
            "symptom": self.symptom,
            "step": self.step,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of `to_dict`; a malformed record raises `DataError`."""
        try:
            step = data["step"]
            return cls(
                symptom=data["symptom"],
                step=None if step is None else int(step),
                severity=data["severity"],
                message=str(data["message"]),
                fix=str(data.get("fix", "")),
                evidence=dict(data.get("evidence") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed finding record: {exc}") from None
