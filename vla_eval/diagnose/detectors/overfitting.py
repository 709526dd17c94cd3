"""Overfitting: training loss falling while held-out loss rises, judged at eval passes.

Plain floats only; must not import numpy-heavy code or torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from vla_eval.diagnose.detectors.base import Detector, Latch, Signals, finite
from vla_eval.diagnose.findings import Finding
from vla_eval.formatting import number, pct


@dataclass
class Overfitting(Detector):
    """Training loss falling while held-out loss rises (judged at eval passes).

    Trips when the held-out loss is at least ``rise`` above its best so far while the
    training loss is at least ``fall`` below what it was at that best eval.

    Attributes:
        rise: relative rise of held-out loss over its best that trips.
        fall: relative fall of training loss since the best eval required with it.
        critical_rise: relative rise that makes the finding critical.
        patience: consecutive tripped evals needed to fire.
        rearm_after: consecutive clear evals after which it can fire again.
    """

    symptom: ClassVar[str] = "overfitting"
    rise: float = 0.1
    fall: float = 0.05
    critical_rise: float = 0.5
    patience: int = 2
    rearm_after: int = 2
    _train_sum: float = field(default=0.0, init=False, repr=False)
    _train_n: int = field(default=0, init=False, repr=False)
    _last_train: float | None = field(default=None, init=False, repr=False)
    _best: tuple | None = field(default=None, init=False, repr=False)
    _latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)

    def new_stage(self) -> None:
        """Another stage trains on other data: its held-out loss starts a new best."""
        self._best = None

    def update(self, signals: Signals) -> Finding | None:
        """Accumulate step losses; judge at records that carry a held-out loss."""
        if signals.heldout_loss is None:
            if finite(signals.loss):
                self._train_sum += signals.loss
                self._train_n += 1
            return None
        heldout = signals.heldout_loss
        if finite(signals.train_loss):
            train = signals.train_loss
        elif self._train_n:
            train = self._train_sum / self._train_n
        else:
            train = self._last_train
        self._train_sum, self._train_n, self._last_train = 0.0, 0, train
        if not finite(heldout) or train is None:
            return None
        if self._best is None or heldout < self._best[1]:
            self._best = (signals.step, heldout, train)
            tripped = False
        else:
            best_step, best_heldout, best_train = self._best
            tripped = heldout >= best_heldout * (1 + self.rise) and train <= best_train * (
                1 - self.fall
            )
        if not self._latch.update(tripped):
            return None
        best_step, best_heldout, best_train = self._best
        up = heldout / best_heldout - 1
        down = 1 - train / best_train
        rose = f"rose {pct(up, digits=None)} from" if up < 1 else f"rose to {number(up + 1)}x"
        message = (
            f"held-out loss {rose} its best {number(best_heldout, 3)} (step {best_step}) "
            f"to {number(heldout, 3)} while training loss fell {pct(down, digits=None)} "
            f"({number(best_train, 3)} -> {number(train, 3)}): the model is memorising its "
            "training data."
        )
        fix = (
            f"keep the step-{best_step} checkpoint (best held-out loss); add data (more "
            "demonstrations, or web data in the mix) and augmentation (random crops, colour "
            "jitter, action noise), or raise weight decay (e.g. 0.01 -> 0.05)."
        )
        evidence = {
            "heldout_loss": heldout,
            "best_heldout_loss": best_heldout,
            "best_step": best_step,
            "train_loss": train,
            "train_loss_at_best": best_train,
        }
        severity = "critical" if up >= self.critical_rise else "warning"
        return self._finding(signals, severity, message, fix, evidence)
