"""Loss trend: is the model still learning, or has its loss levelled off?

Zig-zag predicted chunks mean two different things: a model that has learned its
targets and still vibrates (jitter: smooth, larger chunks), or a model that has not
learned them yet (under-training: train longer, a higher LR). `LossTrend` tells them
apart from the losses the loop already reports: the training loss in blocks of
``window`` steps, and the held-out loss of eval passes. Plain floats only; must not
import numpy or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrendVerdict:
    """Why the loss is judged not to have converged (what the finding quotes).

    Attributes:
        reason: ``"falling"`` (still dropping by more than the plateau) or
            ``"barely_moved"`` (little below where the stage started).
        signal: ``"training"`` or ``"held-out"`` loss.
        before: the earlier value compared (previous block / eval, or the first).
        now: the latest value.
    """

    reason: str
    signal: str
    before: float
    now: float


@dataclass
class LossTrend:
    """Block means of the training loss and the last held-out losses of one stage.

    Args:
        window: training steps per block.
        plateau: relative drop between consecutive blocks (or evals) below which the
            loss counts as levelled off.
        min_drop: relative drop from the first block (or eval) a converged loss has
            made; less counts as barely moving.

    >>> trend = LossTrend(window=2, plateau=0.05, min_drop=0.2)
    >>> for loss in (1.0, 1.0, 0.8, 0.8, 0.5, 0.5):
    ...     trend.add_loss(loss)
    >>> trend.verdict().reason
    'falling'
    >>> for loss in (0.49, 0.49):
    ...     trend.add_loss(loss)
    >>> trend.verdict() is None
    True
    """

    window: int = 50
    plateau: float = 0.05
    min_drop: float = 0.2
    blocks: list = field(default_factory=list)  # first block mean, then the last two
    heldout: list = field(default_factory=list)  # first held-out loss, then the last two
    _sum: float = 0.0
    _n: int = 0

    def add_loss(self, loss: float | None) -> None:
        """One training step's loss (non-finite values are skipped)."""
        if loss is None or not math.isfinite(loss):
            return
        self._sum += loss
        self._n += 1
        if self._n >= self.window:
            _push(self.blocks, self._sum / self._n)
            self._sum, self._n = 0.0, 0

    def add_heldout(self, loss: float | None) -> None:
        """One eval pass's held-out loss."""
        if loss is not None and math.isfinite(loss):
            _push(self.heldout, loss)

    def known(self) -> bool:
        """Whether there are two blocks or two evals to judge the trend by."""
        return len(self.blocks) >= 2 or len(self.heldout) >= 2

    def verdict(self) -> TrendVerdict | None:
        """Why the loss has not converged, or None when it has (or nothing is known).

        The held-out loss decides when there are two eval passes (a training loss that
        still falls while the held-out loss stays put is memorising, not learning).
        """
        signal, values = ("held-out", self.heldout)
        if len(values) < 2:
            signal, values = ("training", self.blocks)
        if len(values) < 2:
            return None
        first, before, now = values[0], values[-2], values[-1]
        if now < (1 - self.plateau) * before:
            return TrendVerdict("falling", signal, before, now)
        if now > (1 - self.min_drop) * first:
            return TrendVerdict("barely_moved", signal, first, now)
        return None


def _push(values: list, value: float) -> None:
    """Keep the first value and the last two."""
    values.append(value)
    if len(values) > 3:
        del values[1]
