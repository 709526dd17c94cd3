"""Action jitter: high-frequency sign changes and jerk in predicted or executed actions.

Judged on predicted chunks against target chunks in training, and on executed
rollout actions (alone or against demonstrations) in evaluation. numpy only; must not
import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from vla_eval.diagnose.detectors.base import Detector, Latch, Signals
from vla_eval.diagnose.detectors.trend import LossTrend, TrendVerdict
from vla_eval.diagnose.findings import Finding
from vla_eval.formatting import number, pct


def roughness(actions: np.ndarray, scale: np.ndarray, rel_eps: float = 0.05) -> tuple[float, float]:
    """High-frequency content of action sequences.

    Args:
        actions: (sequences, time, dim) actions; time >= 3.
        scale: (dim,) spread of each action dimension; differences are measured in
            these units.
        rel_eps: steps smaller than ``rel_eps * scale`` count as standing still.

    Returns:
        (sign_change_rate, jerk): the fraction of consecutive significant steps
        that reverse direction (0 for smooth motion, about 2/3 for white noise), and
        the mean absolute second difference in units of ``scale`` (for delta
        end-effector actions, the second difference of the command is the jerk).

    >>> a = np.array([[[0.0], [1.0], [0.0], [1.0], [0.0]]])
    >>> roughness(a, np.array([0.5]))
    (1.0, 4.0)
    """
    scale = np.maximum(np.asarray(scale, dtype=np.float64), 1e-12)
    d1 = np.diff(actions, axis=1) / scale
    moving = np.abs(d1) > rel_eps
    both = moving[:, 1:] & moving[:, :-1]
    flips = both & (np.sign(d1[:, 1:]) != np.sign(d1[:, :-1]))
    n = int(both.sum())
    scr = float(flips.sum()) / n if n else 0.0
    jerk = float(np.abs(np.diff(d1, axis=1)).mean())
    return scr, jerk


def action_scale(actions: np.ndarray) -> np.ndarray:
    """(dim,) spread of each action dimension over all leading axes, floored so a
    constant dimension (an unused gripper) does not divide by zero."""
    flat = actions.reshape(-1, actions.shape[-1]).astype(np.float64)
    std = flat.std(axis=0)
    floor = max(0.1 * float(np.median(std)), 1e-6)
    return np.maximum(std, floor)


@dataclass
class ActionJitter(Detector):
    """High-frequency sign changes and jerk in predicted or executed actions.

    In training, predicted chunks (batch, chunk >= 3, dim) are compared with the
    target chunks; in evaluation, executed rollout actions (time, dim) are judged
    on their own or against demonstration actions. Trips when the sign-change rate
    is at least ``scr_threshold`` and the jerk is either large in absolute terms
    (``abs_jerk`` action spreads per step) or ``jerk_ratio`` times the reference's.
    With ``judge_targets``, target chunks that jitter by the absolute criteria trip
    too, even while the predictions are still smooth: a cross-entropy policy first
    averages the zigzag of jerky demonstrations, then hops between its modes when
    executed, so the demonstrations are worth flagging before the robot vibrates.

    Predicted chunks that zig-zag around smooth targets while the loss has not
    levelled off (still falling by ``plateau`` per ``trend_window`` steps, or less than
    ``min_drop`` below where the stage started; the held-out loss decides when eval
    passes report it) are reported as ``under_training`` instead: the model has not
    learned the chunks yet, and smoothing would hide that.

    Attributes:
        scr_threshold: sign-change rate of consecutive steps that counts as jitter.
        abs_jerk: mean |second difference| in units of the action spread that trips.
        jerk_ratio: multiple of the reference jerk that trips.
        jerk_floor: reference jerk assumed at least this (smooth demos have ~0).
        rel_eps: steps smaller than this share of the spread count as standing still.
        judge_targets: also flag jittery target chunks (the training data).
        warmup_steps: training steps before which predictions are not judged.
        trend_window: training steps per block of the loss trend.
        plateau: relative drop per block (or eval) below which the loss has levelled off.
        min_drop: relative drop since the stage began below which the loss barely moved.
        patience: consecutive tripped training checks needed to fire.
        rearm_after: consecutive clear checks after which it can fire again.
    """

    symptom: ClassVar[str] = "action_jitter"
    scr_threshold: float = 0.4
    abs_jerk: float = 0.5
    jerk_ratio: float = 3.0
    jerk_floor: float = 0.05
    rel_eps: float = 0.05
    judge_targets: bool = True
    warmup_steps: int = 200
    trend_window: int = 50
    plateau: float = 0.05
    min_drop: float = 0.2
    patience: int = 3
    rearm_after: int = 10
    _latch: Latch = field(init=False, repr=False)
    _under_latch: Latch = field(init=False, repr=False)
    _rollout_latch: Latch = field(init=False, repr=False)
    _trend: LossTrend = field(init=False, repr=False)
    _losses_seen: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)
        self._under_latch = Latch(self.patience, self.rearm_after)
        self._rollout_latch = Latch(1, 1)
        self.new_stage()

    def new_stage(self) -> None:
        """A new stage (other LR, other trainable parts) starts a new loss trend."""
        self._trend = LossTrend(self.trend_window, self.plateau, self.min_drop)

    def _tripped(self, scr: float, jerk: float, ref_jerk: float | None) -> bool:
        if scr < self.scr_threshold:
            return False
        relative = ref_jerk is not None and jerk >= self.jerk_ratio * max(ref_jerk, self.jerk_floor)
        return jerk >= self.abs_jerk or relative

    def update(self, signals: Signals) -> Finding | None:
        """Judge predicted chunks (training) or rollout actions (evaluation)."""
        self._trend.add_loss(signals.loss)
        self._trend.add_heldout(signals.heldout_loss)
        self._losses_seen = self._losses_seen or self._trend.known()
        if signals.rollout_actions is not None:
            return self._update_rollouts(signals)
        pred, target = signals.pred_actions, signals.target_actions
        if pred is None or target is None or pred.ndim != 3 or pred.shape[1] < 3:
            return None
        if signals.step is not None and signals.step < self.warmup_steps:
            return None
        scale = action_scale(target)
        p_scr, p_jerk = roughness(pred.astype(np.float64), scale, self.rel_eps)
        t_scr, t_jerk = roughness(target.astype(np.float64), scale, self.rel_eps)
        targets_jitter = t_scr >= self.scr_threshold and t_jerk >= self.abs_jerk
        preds_jitter = self._tripped(p_scr, p_jerk, t_jerk)
        smooth_targets = preds_jitter and not targets_jitter
        if smooth_targets and self._losses_seen and not self._trend.known():
            return None  # a new stage: wait until its loss trend says which it is
        trend = self._trend.verdict() if smooth_targets else None
        chunk = pred.shape[1]
        evidence = {
            "sign_change_rate": p_scr,
            "jerk": p_jerk,
            "target_sign_change_rate": t_scr,
            "target_jerk": t_jerk,
            "chunk": chunk,
        }
        if self._under_latch.update(trend is not None):
            return self._under_training(signals, trend, evidence)
        # one latch for both causes: jittery data and a policy copying it are one episode
        jitter = (preds_jitter and trend is None) or (self.judge_targets and targets_jitter)
        if not self._latch.update(jitter):
            return None
        if not preds_jitter:
            message = (
                "the training target chunks jitter: they reverse direction on "
                f"{pct(t_scr, digits=None)} of steps with jerk {number(t_jerk)} "
                "action-spreads/step; "
                f"the predicted chunks are still smooth ({pct(p_scr, digits=None)}, "
                f"{number(p_jerk)}), but a policy fitting these demonstrations hops between their "
                "zigzags when executed."
            )
            fix = (
                "filter or smooth the demonstrations before training (drop jerky ones; or a "
                "moving average over 3-5 steps / a Savitzky-Golay filter on the actions), and "
                f"execute larger chunks (chunk {chunk} -> {2 * chunk}) with temporal ensembling."
            )
            return self._finding(signals, "warning", message, fix, evidence)
        message = (
            f"predicted action chunks reverse direction on {pct(p_scr, digits=None)} of steps "
            f"with jerk {number(p_jerk)} action-spreads/step (targets: "
            f"{pct(t_scr, digits=None)}, {number(t_jerk)})"
        )
        if targets_jitter:
            message += ": the demonstrations themselves jitter and the policy copies them."
            fix = (
                "smooth the demonstration actions (moving average over 3-5 steps or a "
                "Savitzky-Golay filter) or drop the jerky demonstrations, and predict "
                f"larger chunks (chunk {chunk} -> {2 * chunk}) with temporal ensembling."
            )
        else:
            message += f", {number(p_jerk / max(t_jerk, self.jerk_floor))}x the targets' jerk."
            fix = (
                f"predict larger chunks (chunk {chunk} -> {2 * chunk}) and smooth executed "
                "actions (temporal ensembling of overlapping chunks, or an exponential "
                "moving average with weight 0.5)."
            )
        return self._finding(signals, "warning", message, fix, evidence)

    def _under_training(self, signals: Signals, trend: TrendVerdict, evidence: dict) -> Finding:
        """Zig-zag chunks of a model whose loss has not levelled off yet."""
        p_scr, t_scr = evidence["sign_change_rate"], evidence["target_sign_change_rate"]
        if trend.reason == "falling":
            how = f"is still falling ({number(trend.before, 3)} -> {number(trend.now, 3)} since"
            how += " the previous eval)" if trend.signal == "held-out" else " the previous block)"
        else:
            how = (
                f"has barely moved since the stage began ({number(trend.before, 3)} -> "
                f"{number(trend.now, 3)})"
            )
        message = (
            f"predicted action chunks reverse direction on {pct(p_scr, digits=None)} of steps "
            f"(targets: {pct(t_scr, digits=None)}) while the {trend.signal} loss {how}: the "
            "model has not learned the chunks yet; this is under-training, not jitter."
        )
        context = self.context
        fix = (
            f"train longer, or {context.lr_text(signals.lr, 10)} for "
            f"{context.trainable_text()}; judge jitter again once the loss has levelled off "
            "(smoothing or larger chunks would only hide an unlearned policy)."
        )
        evidence |= {
            "trend": trend.reason,
            "loss_signal": trend.signal,
            "loss_before": trend.before,
            "loss_now": trend.now,
        }
        return Finding("under_training", signals.step, "warning", message, fix, evidence)

    def _update_rollouts(self, signals: Signals) -> Finding | None:
        seqs = [np.asarray(a, dtype=np.float64) for a in signals.rollout_actions or ()]
        seqs = [a.reshape(len(a), -1) for a in seqs if len(a) >= 3]
        if not seqs:
            return None
        refs = [np.asarray(a, dtype=np.float64) for a in signals.reference_actions or ()]
        refs = [a.reshape(len(a), -1) for a in refs if len(a) >= 3]
        scale = action_scale(np.concatenate(refs if refs else seqs))
        per_episode = [roughness(a[None], scale, self.rel_eps) for a in seqs]
        scr = float(np.mean([s for s, _ in per_episode]))
        jerk = float(np.mean([j for _, j in per_episode]))
        ref_scr = ref_jerk = None
        if refs:
            ref_stats = [roughness(a[None], scale, self.rel_eps) for a in refs]
            ref_scr = float(np.mean([s for s, _ in ref_stats]))
            ref_jerk = float(np.mean([j for _, j in ref_stats]))
        jittery = [self._tripped(s, j, ref_jerk) for s, j in per_episode]
        if not self._rollout_latch.update(self._tripped(scr, jerk, ref_jerk)):
            return None
        labels = list(signals.rollout_labels or [str(i) for i in range(len(seqs))])
        worst = sorted(range(len(seqs)), key=lambda i: -per_episode[i][1])[:3]
        message = (
            f"executed actions reverse direction on {pct(scr, digits=None)} of steps with jerk "
            f"{number(jerk)} action-spreads/step; {sum(jittery)} of {len(seqs)} rollouts jitter "
            f"(worst: {', '.join(labels[i] for i in worst)})"
        )
        message += (
            f"; demonstrations: {pct(ref_scr, digits=None)}, jerk {number(ref_jerk)}."
            if refs
            else "."
        )
        fix = (
            "execute action chunks instead of single actions (chunk 1 -> 8) with temporal "
            "ensembling, or smooth executed actions with an exponential moving average "
            "(weight 0.5); if the demonstrations jitter too, smooth them before training."
        )
        evidence = {
            "sign_change_rate": scr,
            "jerk": jerk,
            "reference_sign_change_rate": ref_scr,
            "reference_jerk": ref_jerk,
            "rollouts": len(seqs),
            "jittery_rollouts": int(sum(jittery)),
            "worst": [labels[i] for i in worst],
        }
        return self._finding(signals, "warning", message, fix, evidence)
