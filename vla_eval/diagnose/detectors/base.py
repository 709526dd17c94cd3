"""What every detector shares: the `Signals` record, the `Latch`, the `Detector` base
and the `DetectorSet` that runs a run's detectors.

Each detector is a small stateful object with thresholds as dataclass fields (sane
defaults, all settable) and one method, ``update(signals) -> Finding | None``. It
reads only the signals it needs from a `Signals` record and stays silent when they
never arrive. A detector fires once per *episode* of its symptom: after firing it
stays quiet while the symptom persists and re-arms only after the symptom has been
absent for ``rearm_after`` consecutive observations (the `Latch`).

Detectors work on plain floats and numpy arrays. They must not import torch: the
monitor (`vla_eval.diagnose.monitor`) converts tensors, and the offline runner feeds
logged metrics, so the same code judges a live loop, a finished run and rollouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from vla_eval.diagnose.findings import Finding
from vla_eval.formatting import number, pct

# (n, sum, sum of squares or None) of per-sample errors of one task.
TaskErrorStats = tuple[float, float, "float | None"]


@dataclass(frozen=True)
class Signals:
    """What one training step, eval pass or set of rollouts tells the detectors.

    Every field but ``step`` is optional; a detector ignores a record that lacks
    its signals.

    Attributes:
        step: training step (None for rollouts not tied to a step).
        loss: training loss of this step.
        grad_norm: total gradient norm before clipping.
        nonfinite_param: name of the first parameter whose gradient is NaN/inf.
        largest_grad_params: (name, gradient norm) of the parameters with the largest
            gradient norms, given when the total norm is not finite although every
            parameter's own gradient norm is (the float32 total overflowed).
        lr: learning rate of this step (used to make fixes concrete).
        pred_actions: predicted actions, (batch, chunk, dim) float, or integer bins.
        target_actions: target actions, same shape as ``pred_actions``.
        pred_mean: for binned predictions given as logits, the expected bin under the
            predicted distribution, same shape as ``pred_actions`` (float). Mode
            collapse is judged on it: an argmax stays on a dominant bin long after the
            distribution has begun to follow the input.
        task_errors: task -> (n, sum, sum of squares or None) of per-sample errors.
        heldout_loss: loss on held-out demonstrations (eval pass).
        heldout_task_loss: task -> held-out loss of that task (eval pass).
        heldout_task_accuracy: task -> held-out accuracy in [0, 1] (eval pass).
        train_loss: training loss reported with an eval pass (else the mean of
            the step losses since the previous eval is used).
        web_loss: vision-language (web) loss from an eval pass.
        web_accuracy: vision-language accuracy in [0, 1] from an eval pass.
        web_examples: number of examples behind ``web_accuracy`` (its sampling noise).
        rollout_actions: executed actions of rollouts, each (time, dim).
        reference_actions: demonstration actions to compare rollouts with.
        rollout_labels: a name per rollout (for the evidence).
    """

    step: int | None
    loss: float | None = None
    grad_norm: float | None = None
    nonfinite_param: str | None = None
    largest_grad_params: tuple[tuple[str, float], ...] | None = None
    lr: float | None = None
    pred_actions: np.ndarray | None = None
    target_actions: np.ndarray | None = None
    pred_mean: np.ndarray | None = None
    task_errors: Mapping[str, TaskErrorStats] | None = None
    heldout_loss: float | None = None
    train_loss: float | None = None
    heldout_task_loss: Mapping[str, float] | None = None
    heldout_task_accuracy: Mapping[str, float] | None = None
    web_loss: float | None = None
    web_accuracy: float | None = None
    web_examples: int | None = None
    rollout_actions: Sequence[np.ndarray] | None = None
    reference_actions: Sequence[np.ndarray] | None = None
    rollout_labels: Sequence[str] | None = None


@dataclass
class Latch:
    """Once-per-episode firing: trip ``patience`` times in a row to fire, then stay
    quiet until ``rearm_after`` consecutive clear observations.

    >>> latch = Latch(patience=2, rearm_after=2)
    >>> [latch.update(t) for t in (True, True, True, False, True, False, False, True, True)]
    [False, True, False, False, False, False, False, False, True]
    """

    patience: int = 1
    rearm_after: int = 10
    active: bool = False
    _run: int = 0
    _clear: int = 0

    def update(self, tripped: bool) -> bool:
        """Record one observation; True when a new episode of the symptom starts."""
        if tripped:
            self._clear = 0
            self._run += 1
            if not self.active and self._run >= self.patience:
                self.active = True
                return True
            return False
        self._run = 0
        if self.active:
            self._clear += 1
            if self._clear >= self.rearm_after:
                self.active = False
                self._clear = 0
        return False


@dataclass(frozen=True)
class LoopContext:
    """What the training loop already does, so a fix says what to change relative to it.

    Attributes:
        stage: name of the current training stage (None: one stage).
        lr: the stage's base (peak) learning rate, before warmup and decay.
        clip: the gradient-norm clipping threshold the loop applies (None: no clipping).
        web_ratio: share of web (vision-language) examples in the training batches.
        temperature: the task-sampling temperature the loop uses (1: proportional).
        trainable: what trains in this stage (parameter-name prefixes or a phrase).
    """

    stage: str | None = None
    lr: float | None = None
    clip: float | None = None
    web_ratio: float | None = None
    temperature: float | None = None
    trainable: tuple[str, ...] | None = None

    def lr_text(self, lr: float | None, factor: float) -> str:
        """`lr_change` against the stage's base LR when known, else against ``lr``."""
        if not finite(self.lr):
            return lr_change(lr, factor)
        where = f"stage '{self.stage}' " if self.stage else ""
        return lr_change(self.lr, factor, label=f"{where}base LR")

    def trainable_text(self) -> str:
        """ "the trainable part (action_head, lora)" or "the trainable part"."""
        names = ", ".join(self.trainable or ())
        return f"the trainable part ({names})" if names else "the trainable part"


def finite(x: float | None) -> bool:
    """Whether ``x`` is a number that is neither NaN nor infinite."""
    return x is not None and math.isfinite(x)


def lr_change(lr: float | None, factor: float, label: str = "") -> str:
    """ "halve the LR (1e-3 -> 5e-4)" style text; ``label`` names the LR quoted.

    >>> lr_change(2e-5, 10, label="stage 'robot' base LR")
    "raise the LR 10x (stage 'robot' base LR 2.0e-5 -> 2.0e-4)"
    """
    word = {0.5: "halve the LR", 0.1: "cut the LR 10x", 10: "raise the LR 10x"}.get(
        factor, f"scale the LR by {factor}"
    )
    label = f"{label} " if label else ""
    return f"{word} ({label}{number(lr)} -> {number(lr * factor)})" if finite(lr) else word


def above(ratio: float) -> str:
    """ "35% above" for small rises, "13x" for large ones."""
    return f"{pct(ratio - 1, digits=None)} above" if ratio < 2 else f"{number(ratio)}x"


class Detector:
    """Base of the detectors: thresholds are the dataclass fields given to __init__."""

    symptom: ClassVar[str]
    # what the loop already does; the `DetectorSet` sets it on every detector
    context: LoopContext = LoopContext()

    def update(self, signals: Signals) -> Finding | None:  # pragma: no cover - interface
        """Observe one record; return a Finding when a new episode of the symptom starts."""
        raise NotImplementedError

    def new_stage(self) -> None:
        """Re-baseline at a training-stage boundary (default: keep everything)."""

    def thresholds(self) -> dict[str, Any]:
        """The settable fields and their current values."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)  # type: ignore[arg-type]
            if f.init and not f.name.startswith("_")
        }

    def _finding(
        self, signals: Signals, severity: str, message: str, fix: str, evidence: Mapping
    ) -> Finding:
        return Finding(self.symptom, signals.step, severity, message, fix, dict(evidence))  # type: ignore[arg-type]


class DetectorSet:
    """The detectors of one run and every finding they raised, in order.

    Shared by the live monitor and the offline runner so both judge alike.

    Args:
        detectors: the detectors to run (see `default_detectors`).
        fixes: keep the fix text in findings (False leaves ``fix`` empty).
    """

    def __init__(self, detectors: Sequence[Detector], fixes: bool = True) -> None:
        self.detectors = list(detectors)
        self.fixes = fixes
        self.findings: list[Finding] = []

    def set_context(self, context: LoopContext, new_stage: bool = False) -> None:
        """Tell every detector what the loop does; ``new_stage`` re-baselines them."""
        for detector in self.detectors:
            detector.context = context
            if new_stage:
                detector.new_stage()

    def feed(self, signals: Signals) -> list[Finding]:
        """Run every detector on one record; return (and keep) the new findings."""
        new = []
        for detector in self.detectors:
            finding = detector.update(signals)
            if finding is not None:
                if not self.fixes:
                    finding = replace(finding, fix="")
                new.append(finding)
        self.findings.extend(new)
        return new

    def thresholds(self) -> dict[str, dict[str, Any]]:
        """symptom -> the thresholds in use."""
        return {d.symptom: d.thresholds() for d in self.detectors}
