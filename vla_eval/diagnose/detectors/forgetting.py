"""Catastrophic forgetting: web (vision-language) loss or accuracy degrading from its
baseline, judged at eval passes. Plain floats only; must not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from vla_eval.diagnose.detectors.base import Detector, Latch, Signals, above, finite
from vla_eval.diagnose.findings import Finding
from vla_eval.formatting import number, pct


@dataclass
class CatastrophicForgetting(Detector):
    """Web (vision-language) loss or accuracy degrading from its baseline.

    The baseline is ``baseline_loss`` / ``baseline_accuracy`` when given (e.g. the
    pretrained VLM's numbers before fine-tuning), else the best value seen so far.
    When the eval reports how many examples its accuracy rests on
    (``Signals.web_examples``), a drop must also exceed ``accuracy_z`` standard errors
    of a difference of two such accuracies, so the noise of a small eval set (about
    4 points at 128 examples) is not read as forgetting.

    Attributes:
        loss_rise: relative rise of web loss over the baseline that trips.
        accuracy_drop: absolute drop of web accuracy (fraction) that trips.
        accuracy_z: standard errors the drop must also exceed (when the number of
            eval examples is known).
        baseline_loss: fixed reference web loss (None: best so far).
        baseline_accuracy: fixed reference web accuracy (None: best so far).
        patience: consecutive tripped evals needed to fire.
        rearm_after: consecutive clear evals after which it can fire again.
    """

    symptom: ClassVar[str] = "catastrophic_forgetting"
    loss_rise: float = 0.2
    accuracy_drop: float = 0.05
    accuracy_z: float = 2.5
    baseline_loss: float | None = None
    baseline_accuracy: float | None = None
    patience: int = 2
    rearm_after: int = 2
    _best_loss: tuple | None = field(default=None, init=False, repr=False)
    _best_acc: tuple | None = field(default=None, init=False, repr=False)
    _latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)

    def update(self, signals: Signals) -> Finding | None:
        """Judge one eval pass's web loss and/or accuracy."""
        loss, acc = signals.web_loss, signals.web_accuracy
        if not finite(loss) and not finite(acc):
            return None
        ref_loss = (None, self.baseline_loss) if self.baseline_loss is not None else self._best_loss
        ref_acc = (
            (None, self.baseline_accuracy) if self.baseline_accuracy is not None else self._best_acc
        )
        loss_bad = (
            finite(loss) and ref_loss is not None and loss >= ref_loss[1] * (1 + self.loss_rise)
        )
        needed = self.accuracy_drop
        if ref_acc is not None and signals.web_examples:
            p = min(max(ref_acc[1], 1.0 / signals.web_examples), 1.0 - 1.0 / signals.web_examples)
            needed = max(
                needed, self.accuracy_z * math.sqrt(2 * p * (1 - p) / signals.web_examples)
            )
        acc_bad = finite(acc) and ref_acc is not None and acc <= ref_acc[1] - needed
        if finite(loss) and (self._best_loss is None or loss < self._best_loss[1]):
            self._best_loss = (signals.step, loss)
        if finite(acc) and (self._best_acc is None or acc > self._best_acc[1]):
            self._best_acc = (signals.step, acc)
        if not self._latch.update(loss_bad or acc_bad):
            return None
        parts, since = [], []
        if loss_bad:
            parts.append(
                f"web loss {number(loss, 3)} is {above(loss / ref_loss[1])} its "
                f"{'baseline' if ref_loss[0] is None else f'best (step {ref_loss[0]})'} "
                f"{number(ref_loss[1], 3)}"
            )
            since.append(ref_loss[0])
        if acc_bad:
            parts.append(
                f"web accuracy {pct(acc, digits=None)} is {number(100 * (ref_acc[1] - acc))} "
                "points below its "
                f"{'baseline' if ref_acc[0] is None else f'best (step {ref_acc[0]})'} "
                f"{pct(ref_acc[1], digits=None)}"
            )
            since.append(ref_acc[0])
        message = "; ".join(parts) + ": vision-language ability is being forgotten."
        rollback = [s for s in since if s is not None]
        fix = _mix_fix(self.context.web_ratio) + (
            f"; the step-{min(rollback)} checkpoint still has it." if rollback else "."
        )
        evidence = {
            "web_loss": loss,
            "reference_web_loss": None if ref_loss is None else ref_loss[1],
            "web_accuracy": acc,
            "reference_web_accuracy": None if ref_acc is None else ref_acc[1],
        }
        return self._finding(signals, "warning", message, fix, evidence)


def _mix_fix(web_ratio: float | None) -> str:
    """The remedy, relative to the web share the loop already mixes in (if known)."""
    lora = "fine-tune with LoRA / freeze the language backbone"
    if web_ratio is None:
        return (
            "keep web data in the mix (co-train robot:web 50:50 or 80:20 instead of robot "
            f"only), or {lora}"
        )
    if web_ratio <= 0:
        return f"put web data back in the mix (robot:web 80:20 or 50:50), or {lora}"
    more = min(1.0, max(web_ratio + 0.2, 1.5 * web_ratio))
    return (
        f"the loop already mixes {pct(web_ratio, digits=None)} web data: raise it to "
        f"{pct(more, digits=None)}, or {lora}"
    )
