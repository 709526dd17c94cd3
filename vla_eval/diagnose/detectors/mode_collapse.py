"""Mode collapse: predictions that stop depending on the input.

Judged on the spread of predicted actions across a batch against the targets'
spread, and for binned actions on how much of the batch one bin takes. numpy only;
must not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from vla_eval.diagnose.detectors.base import Detector, Latch, Signals
from vla_eval.diagnose.findings import Finding
from vla_eval.formatting import number, pct


def dispersion_ratio(pred: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """Spread of predictions across the batch relative to the targets' spread.

    Args:
        pred: (batch, ...) predicted actions (float or bins).
        target: (batch, ...) target actions, same shape.

    Returns:
        (ratio, pred_std, target_std): mean over action entries of the standard
        deviation across the batch, for entries where the targets vary at all.

    >>> p = np.array([[0.0], [0.0], [0.1], [0.1]]); t = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> round(dispersion_ratio(p, t)[0], 4)
    0.0447
    """
    b = pred.shape[0]
    ps = pred.reshape(b, -1).astype(np.float64).std(axis=0)
    ts = target.reshape(b, -1).astype(np.float64).std(axis=0)
    mask = ts > 1e-6 * max(float(ts.max(initial=0.0)), 1e-12)
    if not mask.any():
        return math.nan, float(ps.mean()), 0.0
    p, t = float(ps[mask].mean()), float(ts[mask].mean())
    return p / t, p, t


def top_bin_share(tokens: np.ndarray) -> float:
    """Mean over action entries of the share of the batch in the most common bin.

    Args:
        tokens: (batch, ...) non-negative integer bins.

    >>> top_bin_share(np.array([[1, 0], [1, 1], [1, 2], [0, 3]]))
    0.5
    """
    b = tokens.shape[0]
    cols = tokens.reshape(b, -1).astype(np.int64)
    cols = cols - cols.min()
    k = int(cols.max()) + 1
    # offset each column into its own range so one bincount counts every column
    offset = cols + k * np.arange(cols.shape[1])
    counts = np.bincount(offset.ravel(), minlength=k * cols.shape[1]).reshape(cols.shape[1], k)
    return float(counts.max(axis=1).mean() / b)


@dataclass
class ModeCollapse(Detector):
    """Predictions that stop depending on the input.

    Trips when the spread of predicted actions across the batch is below
    ``ratio_threshold`` times the targets' spread (for logits, the spread of the
    expected bin, ``Signals.pred_mean``), or (for binned predictions) one
    bin takes at least ``max_bin_share`` of the batch while the targets' most common
    bin has ``bin_share_margin`` less.

    Attributes:
        ratio_threshold: pred spread / target spread below this trips.
        max_bin_share: share of the batch in one predicted bin that trips.
        bin_share_margin: how much more concentrated than the targets that must be.
        min_batch: smaller batches are not judged.
        warmup_steps: steps before which nothing is judged (a fresh head is flat).
        patience: consecutive tripped checks needed to fire.
        rearm_after: consecutive clear checks after which it can fire again.
    """

    symptom: ClassVar[str] = "mode_collapse"
    ratio_threshold: float = 0.05
    max_bin_share: float = 0.9
    bin_share_margin: float = 0.3
    min_batch: int = 8
    warmup_steps: int = 200
    patience: int = 3
    rearm_after: int = 10
    _latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)

    def update(self, signals: Signals) -> Finding | None:
        """Judge one batch of predicted vs target actions."""
        pred, target = signals.pred_actions, signals.target_actions
        if pred is None or target is None or pred.shape[0] < self.min_batch:
            return None
        if signals.step is not None and signals.step < self.warmup_steps:
            return None
        spread_of = pred if signals.pred_mean is None else signals.pred_mean
        ratio, p_std, t_std = dispersion_ratio(spread_of, target)
        tokens = np.issubdtype(pred.dtype, np.integer) and np.issubdtype(target.dtype, np.integer)
        p_top = top_bin_share(pred) if tokens else None
        t_top = top_bin_share(target) if tokens else None
        spread_low = math.isfinite(ratio) and ratio < self.ratio_threshold
        bin_heavy = (
            p_top is not None
            and p_top >= self.max_bin_share
            and t_top <= p_top - self.bin_share_margin
        )
        if not self._latch.update(spread_low or bin_heavy):
            return None
        evidence = {
            "dispersion_ratio": ratio,
            "pred_std": p_std,
            "target_std": t_std,
            "pred_top_bin_share": p_top,
            "target_top_bin_share": t_top,
            "batch": int(pred.shape[0]),
            "lr": signals.lr,
            "spread_of": "predictions" if signals.pred_mean is None else "expected bin",
        }
        if spread_low:
            message = (
                f"predictions barely depend on the input: their spread across the batch is "
                f"{pct(ratio, digits=None)} of the targets' (std {number(p_std, 3)} vs "
                f"{number(t_std, 3)}, {pred.shape[0]} samples)."
            )
        else:
            message = (
                f"one action bin takes {pct(p_top, digits=None)} of the batch's predictions on "
                f"average (targets' most common bin: {pct(t_top, digits=None)})."
            )
        fix = (
            f"{self.context.lr_text(signals.lr, 0.1)} and add noise: Gaussian action noise with std "
            f"about 0.1x the target spread ({number(0.1 * t_std, 3)}) or input augmentation; "
            "check that the action head is trainable and sees the observation features."
        )
        return self._finding(signals, "warning", message, fix, evidence)
