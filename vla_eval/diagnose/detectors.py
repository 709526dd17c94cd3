"""One detector per symptom of the failure table.

Each detector is a small stateful object with thresholds as dataclass fields (sane
defaults, all settable) and one method, ``update(signals) -> Finding | None``. It
reads only the signals it needs from a `Signals` record and stays silent when they
never arrive. A detector fires once per *episode* of its symptom: after firing it
stays quiet while the symptom persists and re-arms only after the symptom has been
absent for ``rearm_after`` consecutive observations.

Detectors work on plain floats and numpy arrays. They must not import torch: the
monitor (`vla_eval.diagnose.monitor`) converts tensors, and the offline runner feeds
logged metrics, so the same code judges a live loop, a finished run and rollouts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar

import numpy as np

from vla_eval.diagnose.findings import Finding, fmt, pct
from vla_eval.errors import UsageError

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


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _lr_change(lr: float | None, factor: float) -> str:
    """ "halve the LR (1e-3 -> 5e-4)" style text."""
    word = {0.5: "halve the LR", 0.1: "cut the LR 10x"}.get(factor, f"scale the LR by {factor}")
    return f"{word} ({fmt(lr)} -> {fmt(lr * factor)})" if _finite(lr) else word


def _above(ratio: float) -> str:
    """ "35% above" for small rises, "13x" for large ones."""
    return f"{pct(ratio - 1)} above" if ratio < 2 else f"{fmt(ratio)}x"


class Detector:
    """Base of the detectors: thresholds are the dataclass fields given to __init__."""

    symptom: ClassVar[str]

    def update(self, signals: Signals) -> Finding | None:  # pragma: no cover - interface
        """Observe one record; return a Finding when a new episode of the symptom starts."""
        raise NotImplementedError

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


# --- gradient explosion ------------------------------------------------------------


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

    Attributes:
        spike_factor: a grad norm above this multiple of the running median trips.
        loss_spike_factor: a loss above this multiple of the running median trips.
        window: number of recent healthy steps the medians are taken over.
        min_history: healthy steps needed before the factors above apply.
        early_factor: the spike factor used while the history is shorter.
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
    single_spike_factor: float = 100.0
    confirm_within: int = 10
    rearm_after: int = 50
    _grads: deque = field(init=False, repr=False)
    _losses: deque = field(init=False, repr=False)
    _early_grads: list = field(default_factory=list, init=False, repr=False)
    _early_losses: list = field(default_factory=list, init=False, repr=False)
    _pending: tuple | None = field(default=None, init=False, repr=False)
    _pending_age: int = field(default=0, init=False, repr=False)
    _latch: Latch = field(init=False, repr=False)
    _nan_latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._grads = deque(maxlen=self.window)
        self._losses = deque(maxlen=self.window)
        self._latch = Latch(1, self.rearm_after)
        self._nan_latch = Latch(1, self.rearm_after)

    def update(self, signals: Signals) -> Finding | None:
        """Judge one step's loss, grad norm and non-finite parameter name."""
        step, loss, grad = signals.step, signals.loss, signals.grad_norm
        if loss is None and grad is None and signals.nonfinite_param is None:
            return None
        nonfinite = (
            (loss is not None and not math.isfinite(loss))
            or (grad is not None and not math.isfinite(grad))
            or signals.nonfinite_param is not None
        )
        grad_med = float(np.median(self._grads)) if self._grads else None
        loss_med = float(np.median(self._losses)) if self._losses else None
        # a short history gives a noisy median: judge only huge jumps until it fills
        grad_factor = (
            self.spike_factor if len(self._grads) >= self.min_history else self.early_factor
        )
        loss_factor = (
            self.loss_spike_factor if len(self._losses) >= self.min_history else self.early_factor
        )
        # a jump from a converged 1e-6 to 1e-4 is no explosion: a spike must also
        # exceed the typical value of the first healthy steps
        grad_spike = (
            not nonfinite
            and grad is not None
            and grad_med is not None
            and grad > grad_factor * max(grad_med, 1e-12)
            and grad > float(np.median(self._early_grads))
        )
        loss_spike = (
            not nonfinite
            and loss is not None
            and loss_med is not None
            and loss_med > 0
            and loss > loss_factor * loss_med
            and loss > float(np.median(self._early_losses))
        )
        tripped = nonfinite or grad_spike or loss_spike
        # what a spike finding reports: this step, or the unconfirmed spike before it
        report = (signals, grad, grad_med, len(self._grads))
        self._pending_age += 1
        if self._pending is not None and self._pending_age > self.confirm_within:
            self._pending = None
        if grad_spike and not loss_spike and grad < self.single_spike_factor * max(grad_med, 1e-12):
            if self._pending is None:
                self._pending, self._pending_age = report, 0
                grad_spike = False  # wait for a second spike
            else:
                report, self._pending = self._pending, None
        if not tripped:
            # only healthy steps feed the medians, so a lasting explosion never
            # becomes the new normal
            if _finite(grad):
                self._grads.append(grad)
                if len(self._early_grads) < self.min_history:
                    self._early_grads.append(grad)
            if _finite(loss):
                self._losses.append(loss)
                if len(self._early_losses) < self.min_history:
                    self._early_losses.append(loss)
        # a NaN is its own, critical episode: it fires even while a spike warning
        # is still active
        new_nonfinite = self._nan_latch.update(nonfinite)
        new_spike = self._latch.update(grad_spike or loss_spike)
        if not (new_nonfinite or new_spike):
            return None
        evidence = {
            "loss": loss,
            "grad_norm": grad,
            "grad_norm_median": grad_med,
            "loss_median": loss_med,
            "nonfinite_param": signals.nonfinite_param,
            "lr": signals.lr,
        }
        if nonfinite:
            kind, where = _nonfinite_cause(signals, loss, grad)
            evidence["nonfinite_kind"] = kind
            evidence["largest_grad_params"] = (
                None
                if signals.largest_grad_params is None
                else [[name, norm] for name, norm in signals.largest_grad_params]
            )
            parts = []
            if loss is not None:
                parts.append(f"loss is {fmt(loss)}")
            if grad is not None:
                parts.append(f"gradient norm is {fmt(grad)}")
            before = f" (grad-norm median before: {fmt(grad_med)})" if grad_med is not None else ""
            message = f"{' and '.join(parts) or 'gradients are not finite'}{where}{before}."
            fix = (
                "clip the gradient norm at 1.0 (torch.nn.utils.clip_grad_norm_), "
                f"{_lr_change(signals.lr, 0.1)}, and restart from the last checkpoint before "
                f"step {signals.step}; if it persists, look for log(0)/division by zero in the loss."
            )
            return self._finding(signals, "critical", message, fix, evidence)
        if grad_spike:
            signals, grad, grad_med, n_hist = report
            ratio = grad / max(grad_med, 1e-12)
            again = f" Another spike followed by step {step}." if signals.step != step else ""
            message = (
                f"grad norm {fmt(grad)} at step {signals.step}, {fmt(ratio)}x its running "
                f"median {fmt(grad_med)} over the last {n_hist} healthy steps.{again}"
            )
            evidence |= {"grad_norm": grad, "grad_norm_median": grad_med}
        else:
            ratio = loss / loss_med
            message = (
                f"loss {fmt(loss)} at step {signals.step}, {fmt(ratio)}x its running "
                f"median {fmt(loss_med)}: training is diverging."
            )
        factor = 0.1 if ratio >= 1000 else 0.5
        fix = f"clip the gradient norm at 1.0 and {_lr_change(signals.lr, factor)}."
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
        largest = ", ".join(f"'{name}' ({fmt(norm)})" for name, norm in signals.largest_grad_params)
        return "norm_overflow", (
            "; the total gradient norm overflowed while every parameter's gradient is finite"
            f" (largest gradient norms: {largest})"
        )
    if grad is None or math.isfinite(grad):
        return "loss", ""
    return "unknown", ""


# --- mode collapse -----------------------------------------------------------------


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
                f"{pct(ratio)} of the targets' (std {fmt(p_std, 3)} vs {fmt(t_std, 3)}, "
                f"{pred.shape[0]} samples)."
            )
        else:
            message = (
                f"one action bin takes {pct(p_top)} of the batch's predictions on average "
                f"(targets' most common bin: {pct(t_top)})."
            )
        fix = (
            f"{_lr_change(signals.lr, 0.1)} and add noise: Gaussian action noise with std "
            f"about 0.1x the target spread ({fmt(0.1 * t_std, 3)}) or input augmentation; "
            "check that the action head is trainable and sees the observation features."
        )
        return self._finding(signals, "warning", message, fix, evidence)


# --- action jitter -----------------------------------------------------------------


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

    Attributes:
        scr_threshold: sign-change rate of consecutive steps that counts as jitter.
        abs_jerk: mean |second difference| in units of the action spread that trips.
        jerk_ratio: multiple of the reference jerk that trips.
        jerk_floor: reference jerk assumed at least this (smooth demos have ~0).
        rel_eps: steps smaller than this share of the spread count as standing still.
        judge_targets: also flag jittery target chunks (the training data).
        warmup_steps: training steps before which predictions are not judged.
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
    patience: int = 3
    rearm_after: int = 10
    _latch: Latch = field(init=False, repr=False)
    _rollout_latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)
        self._rollout_latch = Latch(1, 1)

    def _tripped(self, scr: float, jerk: float, ref_jerk: float | None) -> bool:
        if scr < self.scr_threshold:
            return False
        relative = ref_jerk is not None and jerk >= self.jerk_ratio * max(ref_jerk, self.jerk_floor)
        return jerk >= self.abs_jerk or relative

    def update(self, signals: Signals) -> Finding | None:
        """Judge predicted chunks (training) or rollout actions (evaluation)."""
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
        # one latch for both causes: jittery data and a policy copying it are one episode
        if not self._latch.update(preds_jitter or (self.judge_targets and targets_jitter)):
            return None
        chunk = pred.shape[1]
        evidence = {
            "sign_change_rate": p_scr,
            "jerk": p_jerk,
            "target_sign_change_rate": t_scr,
            "target_jerk": t_jerk,
            "chunk": chunk,
        }
        if not preds_jitter:
            message = (
                f"the training target chunks jitter: they reverse direction on {pct(t_scr)} of "
                f"steps with jerk {fmt(t_jerk)} action-spreads/step; the predicted chunks are "
                f"still smooth ({pct(p_scr)}, {fmt(p_jerk)}), but a policy fitting these "
                "demonstrations hops between their zigzags when executed."
            )
            fix = (
                "filter or smooth the demonstrations before training (drop jerky ones; or a "
                "moving average over 3-5 steps / a Savitzky-Golay filter on the actions), and "
                f"execute larger chunks (chunk {chunk} -> {2 * chunk}) with temporal ensembling."
            )
            return self._finding(signals, "warning", message, fix, evidence)
        message = (
            f"predicted action chunks reverse direction on {pct(p_scr)} of steps with jerk "
            f"{fmt(p_jerk)} action-spreads/step (targets: {pct(t_scr)}, {fmt(t_jerk)})"
        )
        if targets_jitter:
            message += ": the demonstrations themselves jitter and the policy copies them."
            fix = (
                "smooth the demonstration actions (moving average over 3-5 steps or a "
                "Savitzky-Golay filter) or drop the jerky demonstrations, and predict "
                f"larger chunks (chunk {chunk} -> {2 * chunk}) with temporal ensembling."
            )
        else:
            message += f", {fmt(p_jerk / max(t_jerk, self.jerk_floor))}x the targets' jerk."
            fix = (
                f"predict larger chunks (chunk {chunk} -> {2 * chunk}) and smooth executed "
                "actions (temporal ensembling of overlapping chunks, or an exponential "
                "moving average with weight 0.5)."
            )
        return self._finding(signals, "warning", message, fix, evidence)

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
            f"executed actions reverse direction on {pct(scr)} of steps with jerk {fmt(jerk)} "
            f"action-spreads/step; {sum(jittery)} of {len(seqs)} rollouts jitter "
            f"(worst: {', '.join(labels[i] for i in worst)})"
        )
        message += f"; demonstrations: {pct(ref_scr)}, jerk {fmt(ref_jerk)}." if refs else "."
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


# --- overfitting -------------------------------------------------------------------


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

    def update(self, signals: Signals) -> Finding | None:
        """Accumulate step losses; judge at records that carry a held-out loss."""
        if signals.heldout_loss is None:
            if _finite(signals.loss):
                self._train_sum += signals.loss
                self._train_n += 1
            return None
        heldout = signals.heldout_loss
        if _finite(signals.train_loss):
            train = signals.train_loss
        elif self._train_n:
            train = self._train_sum / self._train_n
        else:
            train = self._last_train
        self._train_sum, self._train_n, self._last_train = 0.0, 0, train
        if not _finite(heldout) or train is None:
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
        rose = f"rose {pct(up)} from" if up < 1 else f"rose to {fmt(up + 1)}x"
        message = (
            f"held-out loss {rose} its best {fmt(best_heldout, 3)} (step {best_step}) "
            f"to {fmt(heldout, 3)} while training loss fell {pct(down)} "
            f"({fmt(best_train, 3)} -> {fmt(train, 3)}): the model is memorising its training data."
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


# --- catastrophic forgetting -------------------------------------------------------


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
        if not _finite(loss) and not _finite(acc):
            return None
        ref_loss = (None, self.baseline_loss) if self.baseline_loss is not None else self._best_loss
        ref_acc = (
            (None, self.baseline_accuracy) if self.baseline_accuracy is not None else self._best_acc
        )
        loss_bad = (
            _finite(loss) and ref_loss is not None and loss >= ref_loss[1] * (1 + self.loss_rise)
        )
        needed = self.accuracy_drop
        if ref_acc is not None and signals.web_examples:
            p = min(max(ref_acc[1], 1.0 / signals.web_examples), 1.0 - 1.0 / signals.web_examples)
            needed = max(
                needed, self.accuracy_z * math.sqrt(2 * p * (1 - p) / signals.web_examples)
            )
        acc_bad = _finite(acc) and ref_acc is not None and acc <= ref_acc[1] - needed
        if _finite(loss) and (self._best_loss is None or loss < self._best_loss[1]):
            self._best_loss = (signals.step, loss)
        if _finite(acc) and (self._best_acc is None or acc > self._best_acc[1]):
            self._best_acc = (signals.step, acc)
        if not self._latch.update(loss_bad or acc_bad):
            return None
        parts, since = [], []
        if loss_bad:
            parts.append(
                f"web loss {fmt(loss, 3)} is {_above(loss / ref_loss[1])} its "
                f"{'baseline' if ref_loss[0] is None else f'best (step {ref_loss[0]})'} "
                f"{fmt(ref_loss[1], 3)}"
            )
            since.append(ref_loss[0])
        if acc_bad:
            parts.append(
                f"web accuracy {pct(acc)} is {fmt(100 * (ref_acc[1] - acc))} points below its "
                f"{'baseline' if ref_acc[0] is None else f'best (step {ref_acc[0]})'} {pct(ref_acc[1])}"
            )
            since.append(ref_acc[0])
        message = "; ".join(parts) + ": vision-language ability is being forgotten."
        rollback = [s for s in since if s is not None]
        fix = (
            "keep web data in the mix (co-train robot:web 50:50 or 80:20 instead of robot "
            "only), or fine-tune with LoRA / freeze the language backbone"
            + (f"; the step-{min(rollback)} checkpoint still has it." if rollback else ".")
        )
        evidence = {
            "web_loss": loss,
            "reference_web_loss": None if ref_loss is None else ref_loss[1],
            "web_accuracy": acc,
            "reference_web_accuracy": None if ref_acc is None else ref_acc[1],
        }
        return self._finding(signals, "warning", message, fix, evidence)


# --- task imbalance ----------------------------------------------------------------


def temperature_probabilities(counts: Mapping[str, float], temperature: float) -> dict[str, float]:
    """Task sampling probabilities p_i proportional to n_i^(1/T); T = inf is uniform.

    >>> p = temperature_probabilities({"pick": 50000, "place": 30000, "stack": 2000, "pour": 500}, 2)
    >>> {k: round(v, 4) for k, v in p.items()}
    {'pick': 0.482, 'place': 0.3734, 'stack': 0.0964, 'pour': 0.0482}
    """
    names = list(counts)
    n = np.array([float(counts[k]) for k in names])
    if math.isinf(temperature):
        p = np.ones_like(n)
    else:
        # work in logs so n^(1/T) cannot overflow for small T
        logp = np.log(n) / temperature
        p = np.exp(logp - logp.max())
    p = p / p.sum()
    return dict(zip(names, p.tolist(), strict=True))


def _shares_text(p: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {fmt(v)}" for k, v in p.items())


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
    temperatures: tuple[float, ...] = (2.0, 5.0)
    task_counts: Mapping[str, float] | None = None
    patience: int = 3
    rearm_after: int = 10
    _stats: dict = field(default_factory=dict, init=False, repr=False)
    _latch: Latch = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._latch = Latch(self.patience, self.rearm_after)

    def update(self, signals: Signals) -> Finding | None:
        """Accumulate one step's per-task errors and judge them."""
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

    def _report(self, signals, task, ratio, err_r, z, err_c, common, rare, share) -> Finding:
        counts = dict(self.task_counts) if self.task_counts else share
        source = "dataset counts" if self.task_counts else "observed sampling shares"
        now = temperature_probabilities(counts, 1.0)
        message = (
            f"rare tasks lag: {task} error {fmt(err_r, 3)} is {fmt(ratio)}x the common tasks' "
            f"{fmt(err_c, 3)} ({', '.join(common)}); {task} gets {pct(share[task])} of the "
            f"samples, {', '.join(f'{t} {pct(share[t])}' for t in common)}."
        )
        options = []
        for temp in self.temperatures:
            p = temperature_probabilities(counts, temp)
            label = "inf" if math.isinf(temp) else fmt(temp)
            options.append(f"T={label} gives {_shares_text(p)}")
        fix = (
            f"sample tasks with temperature, p ~ n^(1/T) (from {source}; T=1 is now: "
            f"{_shares_text(now)}): try {options[0]}"
            + (f"; if {task} still lags, {'; '.join(options[1:])}" if len(options) > 1 else "")
            + ". Per-sample weight n_task^(1/T - 1) does the same with a weighted sampler."
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
            "suggested_temperature": self.temperatures[0] if self.temperatures else None,
        }
        return self._finding(signals, "warning", message, fix, evidence)


# --- the set -----------------------------------------------------------------------


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
