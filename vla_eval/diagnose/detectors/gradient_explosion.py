"""Gradient explosion: a non-finite loss or gradient, or a loss / gradient-norm spike.

A spike is judged by the one definition of `vla_eval.diagnose.spikes` against the
running median of the recent healthy steps. numpy only; must not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from vla_eval.diagnose.detectors.base import Detector, Latch, Signals, finite
from vla_eval.diagnose.findings import Finding
from vla_eval.diagnose.spikes import RunningMedian, is_spike
from vla_eval.formatting import number

# a gradient-norm median is taken as at least this, so all-zero gradients can spike
_GRAD_FLOOR = 1e-12


@dataclass(frozen=True)
class _Spike:
    """What a spike finding reports: the step of the spike and the median before it."""

    signals: Signals
    grad: float | None
    median: float | None
    history: int


@dataclass(frozen=True)
class _Verdict:
    """One step judged: non-finite, a grad-norm spike, a loss spike (each or none)."""

    nonfinite: bool
    grad_spike: bool
    loss_spike: bool
    grad_median: float | None
    loss_median: float | None
    elevated: bool = False
    sustained: bool = False


@dataclass
class GradientExplosion(Detector):
    """Non-finite loss or gradients (critical), or a gradient-norm / loss spike far
    above its running median (warning).

    A spike must also exceed the median of the first ``min_history`` healthy values,
    so the relative wobble of a converged model's tiny gradients is not flagged. A
    grad-norm spike below ``single_spike_factor`` times the median is reported only
    when a second one follows within ``confirm_within`` steps: an isolated spike of
    20-100x that clipping absorbs (the loss does not move) is routine in transformer
    training. The finding then carries the first spike's step and numbers.

    Early in a run (fewer than ``min_history`` healthy steps) the medians are noisy:
    before ``early_history`` healthy steps only an ``early_factor`` jump counts; after
    it, a loss ``early_loss_factor`` or a grad norm ``early_grad_factor`` times the
    median of the healthy steps so far counts (an LR far too high shows at once, even
    while clipping and Adam keep everything finite). A loss that stays at least
    ``sustained_factor`` times the median of the first healthy steps for
    ``sustained_steps`` steps in a row is flagged too, spike or not. When the loop
    says it clips (`LoopContext.clip`), the finding says clipping is already absorbing
    the spike and the fix changes the LR instead of suggesting clipping.

    Attributes:
        spike_factor: a grad norm above this multiple of the running median trips.
        loss_spike_factor: a loss above this multiple of the running median trips.
        window: number of recent healthy steps the medians are taken over.
        min_history: healthy steps needed before the factors above apply.
        early_factor: the spike factor used before ``early_history`` healthy steps.
        early_history: healthy steps after which the early factors apply.
        early_loss_factor: loss spike factor while the history is shorter than
            ``min_history``.
        early_grad_factor: grad-norm spike factor while the history is shorter.
        sustained_factor: multiple of the first healthy steps' loss that counts as
            elevated.
        sustained_steps: elevated steps in a row that trip.
        single_spike_factor: a grad-norm spike at least this far above the median
            fires on its own; smaller ones need a second within ``confirm_within``.
        confirm_within: steps within which a second spike confirms the first.
        rearm_after: healthy steps after which a new episode can fire.
    """

    symptom: ClassVar[str] = "gradient_explosion"
    spike_factor: float = 20.0
    loss_spike_factor: float = 10.0
    window: int = 100
    min_history: int = 20
    early_factor: float = 1000.0
    early_history: int = 3
    early_loss_factor: float = 5.0
    early_grad_factor: float = 10.0
    sustained_factor: float = 3.0
    sustained_steps: int = 10
    single_spike_factor: float = 100.0
    confirm_within: int = 10
    rearm_after: int = 50
    _grads: RunningMedian = field(init=False, repr=False)
    _losses: RunningMedian = field(init=False, repr=False)
    _pending: _Spike | None = field(default=None, init=False, repr=False)
    _pending_age: int = field(default=0, init=False, repr=False)
    _elevated: int = field(default=0, init=False, repr=False)
    _latch: Latch = field(init=False, repr=False)
    _nan_latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.new_stage()
        self._latch = Latch(1, self.rearm_after)
        self._nan_latch = Latch(1, self.rearm_after)

    def new_stage(self) -> None:
        """A new stage (other LR, data, frozen parts) starts a new healthy baseline."""
        # only healthy steps feed the medians, so a lasting explosion never becomes
        # the new normal
        self._grads = RunningMedian(self.window, keep_first=self.min_history)
        self._losses = RunningMedian(self.window, keep_first=self.min_history)
        self._pending, self._pending_age, self._elevated = None, 0, 0

    def update(self, signals: Signals) -> Finding | None:
        """Judge one step's loss, grad norm and non-finite parameter name."""
        loss, grad = signals.loss, signals.grad_norm
        if loss is None and grad is None and signals.nonfinite_param is None:
            return None
        verdict = self._judge(signals)
        spike = self._spike_to_report(verdict, signals)
        if not (verdict.nonfinite or verdict.grad_spike or verdict.loss_spike or verdict.elevated):
            if finite(grad):
                self._grads.add(grad)
            if finite(loss):
                self._losses.add(loss)
        # a NaN is its own, critical episode: it fires even while a spike warning
        # is still active
        new_nonfinite = self._nan_latch.update(verdict.nonfinite)
        new_spike = self._latch.update(spike is not None or verdict.loss_spike or verdict.sustained)
        if not (new_nonfinite or new_spike):
            return None
        evidence = {
            "loss": loss,
            "grad_norm": grad,
            "grad_norm_median": verdict.grad_median,
            "loss_median": verdict.loss_median,
            "nonfinite_param": signals.nonfinite_param,
            "lr": signals.lr,
        }
        if verdict.nonfinite:
            return self._nonfinite_finding(signals, verdict.grad_median, evidence)
        return self._spike_finding(signals, spike, verdict, evidence)

    def _judge(self, signals: Signals) -> _Verdict:
        loss, grad = signals.loss, signals.grad_norm
        nonfinite = (
            (loss is not None and not math.isfinite(loss))
            or (grad is not None and not math.isfinite(grad))
            or signals.nonfinite_param is not None
        )
        grad_med, loss_med = self._grads.median(), self._losses.median()
        grad_factor = self._factor(len(self._grads), self.spike_factor, self.early_grad_factor)
        loss_factor = self._factor(
            len(self._losses), self.loss_spike_factor, self.early_loss_factor
        )
        # a jump from a converged 1e-6 to 1e-4 is no explosion: a spike must also
        # exceed the typical value of the first healthy steps
        grad_spike = (
            not nonfinite
            and grad is not None
            and is_spike(grad, grad_med, grad_factor, floor=_GRAD_FLOOR)
            and grad > self._grads.first_median()
        )
        loss_spike = (
            not nonfinite
            and loss is not None
            and is_spike(loss, loss_med, loss_factor)
            and loss > self._losses.first_median()
        )
        elevated = (
            not nonfinite
            and loss is not None
            and len(self._losses) >= self.early_history
            and is_spike(loss, self._losses.first_median(), self.sustained_factor)
        )
        self._elevated = self._elevated + 1 if elevated else 0
        sustained = self._elevated >= self.sustained_steps
        return _Verdict(nonfinite, grad_spike, loss_spike, grad_med, loss_med, elevated, sustained)

    def _factor(self, history: int, factor: float, early: float) -> float:
        """The spike factor for a history of this many healthy steps."""
        if history >= self.min_history:
            return factor
        # a short history gives a noisy median: judge only big jumps until it fills
        return self.early_factor if history < self.early_history else max(early, 1.0)

    def _spike_to_report(self, verdict: _Verdict, signals: Signals) -> _Spike | None:
        """The grad-norm spike to report now: this step's, or the unconfirmed one a
        second spike has just confirmed; None while a small spike awaits a second."""
        grad, grad_med = signals.grad_norm, verdict.grad_median
        this = _Spike(signals, grad, grad_med, len(self._grads))
        self._pending_age += 1
        if self._pending is not None and self._pending_age > self.confirm_within:
            self._pending = None
        if not verdict.grad_spike:
            return None
        if verdict.loss_spike or grad >= self.single_spike_factor * max(grad_med, _GRAD_FLOOR):
            return this
        if self._pending is None:
            self._pending, self._pending_age = this, 0
            return None  # wait for a second spike
        first, self._pending = self._pending, None
        return first

    def _nonfinite_finding(
        self, signals: Signals, grad_med: float | None, evidence: dict
    ) -> Finding:
        loss, grad = signals.loss, signals.grad_norm
        kind, where = _nonfinite_cause(signals, loss, grad)
        evidence["nonfinite_kind"] = kind
        evidence["largest_grad_params"] = (
            None
            if signals.largest_grad_params is None
            else [[name, norm] for name, norm in signals.largest_grad_params]
        )
        parts = []
        if loss is not None:
            parts.append(f"loss is {number(loss)}")
        if grad is not None:
            parts.append(f"gradient norm is {number(grad)}")
        before = f" (grad-norm median before: {number(grad_med)})" if grad_med is not None else ""
        message = f"{' and '.join(parts) or 'gradients are not finite'}{where}{before}."
        lr = self.context.lr_text(signals.lr, 0.1)
        restart = f"restart from the last checkpoint before step {signals.step}"
        clip = self.context.clip
        if clip is None:
            fix = f"clip the gradient norm at 1.0 (torch.nn.utils.clip_grad_norm_), {lr}, and "
        else:
            fix = f"the loop already clips at {number(clip)}, which cannot mend a NaN: {lr} and "
        fix += f"{restart}; if it persists, look for log(0)/division by zero in the loss."
        return self._finding(signals, "critical", message, fix, evidence)

    def _spike_finding(
        self, signals: Signals, spike: _Spike | None, verdict: _Verdict, evidence: dict
    ) -> Finding:
        """The warning for a grad-norm ``spike``, else a loss spike or a loss that stays
        elevated at this step."""
        if spike is not None:
            ratio = spike.grad / max(spike.median, _GRAD_FLOOR)
            again = (
                f" Another spike followed by step {signals.step}."
                if spike.signals.step != signals.step
                else ""
            )
            message = (
                f"grad norm {number(spike.grad)} at step {spike.signals.step}, "
                f"{number(ratio)}x its running median {number(spike.median)} over the last "
                f"{spike.history} healthy steps.{again}"
            )
            evidence |= {"grad_norm": spike.grad, "grad_norm_median": spike.median}
            signals = spike.signals
        elif verdict.loss_spike:
            ratio = signals.loss / verdict.loss_median
            message = (
                f"loss {number(signals.loss)} at step {signals.step}, {number(ratio)}x its running "
                f"median {number(verdict.loss_median)}: training is diverging."
            )
        else:
            first = self._losses.first_median()
            ratio = signals.loss / first
            message = (
                f"loss {number(signals.loss)} at step {signals.step} has stayed above "
                f"{number(self.sustained_factor)}x the first healthy steps' "
                f"{number(first)} for {self._elevated} steps: training is unstable."
            )
            evidence["sustained_steps"] = self._elevated
        factor = 0.1 if ratio >= 1000 or self.context.clip is not None else 0.5
        lr = self.context.lr_text(signals.lr, factor)
        grad, clip = signals.grad_norm, self.context.clip
        if clip is None:
            fix = f"clip the gradient norm at 1.0 and {lr}."
        elif finite(grad) and grad > clip:
            message += (
                f" Clipping at {number(clip)} is already absorbing it (this update was scaled "
                f"down {number(grad / clip)}x), so the LR is what is too high."
            )
            fix = f"{lr}, or warm it up over more steps (clipping at {number(clip)} stays)."
        else:
            fix = f"{lr}; the loop already clips at {number(clip)}."
        evidence["clip"] = clip
        return self._finding(signals, "warning", message, fix, evidence | {"ratio": ratio})


def _nonfinite_cause(signals: Signals, loss: float | None, grad: float | None) -> tuple[str, str]:
    """Which value went non-finite, and the clause of the message that says where.

    ``gradient``: a parameter's gradient holds NaN/inf (the first one is named).
    ``norm_overflow``: every parameter's gradient norm is finite but their float32
    total overflowed, which depends on the CPU's kernels; the largest are named.
    ``loss``: only the loss is non-finite. ``unknown``: the total gradient norm is not
    finite and no per-parameter reading came with it.
    """
    if signals.nonfinite_param is not None:
        return "gradient", f"; first non-finite gradient in parameter '{signals.nonfinite_param}'"
    if signals.largest_grad_params:
        largest = ", ".join(
            f"'{name}' ({number(norm)})" for name, norm in signals.largest_grad_params
        )
        return "norm_overflow", (
            "; the total gradient norm overflowed while every parameter's gradient is finite"
            f" (largest gradient norms: {largest})"
        )
    if grad is None or math.isfinite(grad):
        return "loss", ""
    return "unknown", ""
