"""`Diagnose`: the detectors as a callback inside any PyTorch training loop.

Call ``diag.step(...)`` after ``backward()`` and before ``optimizer.step()`` so it can
read the gradients; call ``diag.evaluate(...)`` with the numbers of an eval pass. It
gathers cheap signals (loss, total gradient norm from one fused op, per-task errors,
action statistics every ``check_every`` steps), defers GPU->CPU copies to one per
``sync_every`` steps, and runs the detectors of `vla_eval.diagnose.detectors`. It
hooks nothing global and never changes the model or the optimizer. torch is
imported inside the functions that need it, so importing `vla_eval.diagnose` stays
light for offline use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vla_eval.diagnose import gradients as grads
from vla_eval.diagnose import state
from vla_eval.diagnose.convert import (
    action_arrays,
    array,
    batch_task_errors,
    detached,
    is_tensor,
    loop_context,
    per_task,
    scalar,
    task_losses,
    to_host,
)
from vla_eval.diagnose.detectors import (
    Detector,
    DetectorSet,
    LoopContext,
    Signals,
    default_detectors,
)
from vla_eval.diagnose.findings import Finding
from vla_eval.diagnose.gradients import GradientReading
from vla_eval.errors import DataError, UsageError

SCHEMA = "vla-eval/diagnose/1"
STATE_SCHEMA = "vla-eval/diagnose-state/1"


_KEEP = object()  # new_stage: keep the loop's setting


@dataclass(frozen=True)
class _PendingStep:
    """A step whose loss and gradient norm may still be on the device."""

    step: int
    loss: Any
    grad_norm: Any
    reading: GradientReading | None
    lr: Any
    nonfinite_param: str | None


class Diagnose:
    """Watch a training loop and flag the failure table's symptoms as they appear.

    Args:
        model: the ``torch.nn.Module`` being trained (its gradients are read), or
            None to judge only the signals passed in.
        fixes: attach the concrete fix to each finding.
        check_every: run the array checks (mode collapse, jitter, per-task errors)
            every this many calls to `step`.
        sync_every: copy loss and gradient norm to the host once per this many
            steps (default: every step on CPU, every ``check_every`` on GPU).
            Findings always carry the step they happened at.
        task_counts: dataset counts per task, used to suggest a sampling
            temperature (else the observed shares are used).
        thresholds: per-symptom overrides, e.g. ``{"overfitting": {"rise": 0.2}}``.
        detectors: replace the default detectors entirely.
        stage: name of the training stage the loop starts in.
        lr: the stage's base (peak) learning rate; fixes quote it rather than the
            warmed-up or decayed LR of the step.
        clip: the gradient-norm clipping threshold the loop applies (None: none).
        web_ratio: share of web (vision-language) examples in the loop's batches.
        temperature: the loop's task-sampling temperature (1: proportional).
        trainable: what trains in this stage (names or a phrase), quoted by fixes.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 2)
        >>> diag = Diagnose(model)
        >>> loss = model(torch.randn(8, 4)).pow(2).mean()
        >>> loss.backward()
        >>> diag.step(0, loss=loss)
        []
        >>> _ = model.weight.grad.fill_(float("nan"))
        >>> print(diag.step(1, loss=loss)[0].message)  # doctest: +ELLIPSIS
        loss is ... and gradient norm is nan; first non-finite gradient in parameter 'weight' (...).
    """

    def __init__(
        self,
        model: Any = None,
        fixes: bool = True,
        *,
        check_every: int = 10,
        sync_every: int | None = None,
        task_counts: Mapping[str, float] | None = None,
        thresholds: Mapping[str, Mapping[str, Any]] | None = None,
        detectors: Sequence[Detector] | None = None,
        stage: str | None = None,
        lr: float | None = None,
        clip: float | None = None,
        web_ratio: float | None = None,
        temperature: float | None = None,
        trainable: str | Sequence[str] | None = None,
    ) -> None:
        if int(check_every) < 1:
            raise UsageError(f"check_every must be >= 1, got {check_every}")
        if sync_every is not None and int(sync_every) < 1:
            raise UsageError(f"sync_every must be >= 1, got {sync_every}")
        if task_counts is not None:
            bad = {k: v for k, v in task_counts.items() if not (float(v) > 0)}
            if bad:
                raise UsageError(f"task_counts must be positive, got {bad}")
        self.model = model
        self.check_every = int(check_every)
        self._params = list(model.named_parameters()) if model is not None else []
        on_cpu = all(p.device.type == "cpu" for _, p in self._params)
        self.sync_every = int(sync_every or (1 if on_cpu else self.check_every))
        if detectors is None:
            detectors = default_detectors(thresholds, task_counts)
        elif thresholds:
            raise UsageError("pass either detectors or thresholds, not both")
        self._set = DetectorSet(detectors, fixes=fixes)
        self._pending: list[_PendingStep] = []
        self._calls = 0
        self._task_sums: dict[str, list[float]] = {}  # task -> [samples, loss sum] since a check
        self._context = LoopContext()
        self._set_context(stage, lr, trainable, clip, web_ratio, temperature, new_stage=False)

    # --- public -------------------------------------------------------------------

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, in the order raised."""
        return list(self._set.findings)

    @property
    def detectors(self) -> list[Detector]:
        """The detectors in use (thresholds readable and settable as attributes)."""
        return self._set.detectors

    @property
    def context(self) -> LoopContext:
        """What the loop does now (stage, base LR, clipping, web share, temperature)."""
        return self._context

    def new_stage(
        self,
        name: str,
        *,
        lr: float | None = None,
        trainable: str | Sequence[str] | None = None,
        clip: Any = _KEEP,
        web_ratio: Any = _KEEP,
        temperature: Any = _KEEP,
    ) -> None:
        """Say that a new training stage begins (its own base LR, frozen parts, data).

        The detectors whose baseline belongs to a stage start a new one: the loss and
        gradient-norm medians of `GradientExplosion`, the best held-out loss of
        `Overfitting`, the loss trend behind under-training. Forgetting keeps its web
        baseline (losing it across stages is what it is there to catch).

        Args:
            name: the stage's name, quoted in fixes.
            lr: the stage's base (peak) learning rate.
            trainable: what trains in this stage.
            clip, web_ratio, temperature: change these for the new stage (default: keep).
        """
        self.flush()
        keep = self._context
        self._set_context(
            name,
            lr,
            trainable,
            keep.clip if clip is _KEEP else clip,
            keep.web_ratio if web_ratio is _KEEP else web_ratio,
            keep.temperature if temperature is _KEEP else temperature,
            new_stage=True,
        )

    def read_gradients(self, model: Any = None) -> GradientReading | None:
        """Per-parameter gradient norms with one fused op; no host sync.

        Framework adapters call this where gradients exist before clipping, and pass
        the reading to `step` later as ``gradients=``.

        Args:
            model: read this module instead of the one given at construction.
        """
        return grads.read_gradients(self._params if model is None else model.named_parameters())

    def first_nonfinite_parameter(self, model: Any = None) -> str | None:
        """Name of the first parameter whose gradient holds NaN/inf (one host sync)."""
        reading = self.read_gradients(model)
        if reading is None:
            return None
        return grads.first_nonfinite(reading)

    def largest_gradients(self, model: Any = None, k: int = 3) -> tuple[tuple[str, float], ...]:
        """(name, norm) of the ``k`` parameters with the largest gradient norms."""
        reading = self.read_gradients(model)
        return () if reading is None else grads.largest(reading, k)

    def step(
        self,
        step: int,
        *,
        loss: Any = None,
        pred_actions: Any = None,
        target_actions: Any = None,
        task: Any = None,
        loss_per_task: Mapping[str, Any] | None = None,
        samples_per_task: Mapping[str, int] | None = None,
        per_sample_loss: Any = None,
        grad_norm: Any = None,
        gradients: GradientReading | None = None,
        nonfinite_param: str | None = None,
        lr: float | None = None,
    ) -> list[Finding]:
        """Signals of one training step; returns the findings raised by this call.

        Every keyword is optional. Call after ``backward()`` and before
        ``optimizer.step()``.

        Args:
            step: the global training step.
            loss: training loss (tensor or float).
            pred_actions: predicted actions (batch, [chunk,] dim), float; or integer
                bins; or logits (batch, [chunk,] dim, bins) with integer targets.
            target_actions: target actions, float or integer bins.
            task: task id per sample (strings or integers), or one string.
            loss_per_task: task -> this batch's mean loss on that task.
            samples_per_task: task -> samples of that task in this batch.
            per_sample_loss: (batch,) loss per sample, with ``task``.
            grad_norm: total gradient norm before clipping (e.g. what
                ``clip_grad_norm_`` returned); if you clip before calling `step`,
                pass it, since the gradients read afterwards are already clipped.
            gradients: a `read_gradients` reading taken earlier in this step.
            nonfinite_param: name of the first parameter with a NaN/inf gradient.
            lr: the learning rate of this step (makes the fixes concrete).
        """
        step = int(step)
        reading = gradients
        if reading is None and self._params and grad_norm is None:
            reading = self.read_gradients()
        self._pending.append(
            _PendingStep(step, detached(loss), detached(grad_norm), reading, lr, nonfinite_param)
        )
        check = self._calls % self.check_every == 0
        self._calls += 1
        if loss_per_task and not any(is_tensor(v) for v in loss_per_task.values()):
            # plain numbers cost nothing to keep, so every step counts: a task drawn
            # once in fifty batches still reaches the imbalance detector
            for name, (n, total, _) in task_losses(loss_per_task, samples_per_task, task).items():
                sums = self._task_sums.setdefault(name, [0.0, 0.0])
                sums[0] += n
                sums[1] += total
            loss_per_task = None
        new: list[Finding] = []
        if check or len(self._pending) >= self.sync_every:
            new += self.flush()
        if check:
            signals = self._array_signals(
                step,
                pred_actions,
                target_actions,
                task,
                loss_per_task,
                samples_per_task,
                per_sample_loss,
                lr,
            )
            if signals is not None:
                new += self._set.feed(signals)
        return new

    def evaluate(
        self,
        step: int,
        *,
        heldout_loss: Any = None,
        heldout_loss_per_task: Mapping[str, Any] | None = None,
        heldout_accuracy_per_task: Mapping[str, Any] | None = None,
        web_loss: Any = None,
        web_accuracy: Any = None,
        web_examples: int | None = None,
        train_loss: Any = None,
        rollout_actions: Sequence[Any] | None = None,
        reference_actions: Sequence[Any] | None = None,
        rollout_labels: Sequence[str] | None = None,
    ) -> list[Finding]:
        """Signals of an eval pass; returns the findings raised by this call.

        Args:
            step: the training step the eval belongs to.
            heldout_loss: loss on held-out demonstrations (overfitting).
            heldout_loss_per_task: task -> held-out loss of that task (task
                imbalance that memorised training batches hide).
            heldout_accuracy_per_task: task -> held-out accuracy in [0, 1].
            web_loss: vision-language loss on held-out web data (forgetting).
            web_accuracy: vision-language accuracy in [0, 1] (forgetting).
            web_examples: how many examples ``web_accuracy`` was measured on; a drop
                must then exceed its sampling noise.
            train_loss: training loss to compare with (default: mean step loss since
                the previous eval).
            rollout_actions: executed actions of rollouts, each (time, dim) (jitter).
            reference_actions: demonstration actions to compare the rollouts with.
            rollout_labels: a name per rollout, for the evidence.
        """
        acc = scalar(web_accuracy, "web_accuracy")
        if acc is not None and not 0.0 <= acc <= 1.0:
            raise UsageError(f"web_accuracy must be a fraction in [0, 1], got {acc}")
        if web_examples is not None and (
            isinstance(web_examples, bool) or int(web_examples) != web_examples or web_examples < 1
        ):
            raise UsageError(f"web_examples must be a positive integer, got {web_examples!r}")
        new = self.flush()
        signals = Signals(
            int(step),
            heldout_loss=scalar(heldout_loss, "heldout_loss"),
            heldout_task_loss=per_task(heldout_loss_per_task, "heldout_loss_per_task"),
            heldout_task_accuracy=per_task(
                heldout_accuracy_per_task, "heldout_accuracy_per_task", fraction=True
            ),
            train_loss=scalar(train_loss, "train_loss"),
            web_loss=scalar(web_loss, "web_loss"),
            web_accuracy=acc,
            web_examples=None if web_examples is None else int(web_examples),
            rollout_actions=None
            if rollout_actions is None
            else [array(a, "rollout_actions") for a in rollout_actions],
            reference_actions=None
            if reference_actions is None
            else [array(a, "reference_actions") for a in reference_actions],
            rollout_labels=None if rollout_labels is None else list(rollout_labels),
        )
        return new + self._set.feed(signals)

    def flush(self) -> list[Finding]:
        """Judge the steps whose loss and gradient norm are still on the device."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        rows = [
            (p.loss, p.grad_norm, None if p.reading is None else p.reading.total) for p in pending
        ]
        new: list[Finding] = []
        for p, (loss, given_norm, read_norm) in zip(pending, to_host(rows), strict=True):
            nonfinite = (given_norm is not None and not math.isfinite(given_norm)) or (
                read_norm is not None and not math.isfinite(read_norm)
            )
            name, largest = p.nonfinite_param, None
            if name is None and nonfinite:
                name, largest = self._nonfinite_cause(p.reading)
            signals = Signals(
                p.step,
                loss=loss,
                grad_norm=given_norm if given_norm is not None else read_norm,
                nonfinite_param=name,
                largest_grad_params=largest or None,
                lr=scalar(p.lr, "lr"),
            )
            new += self._set.feed(signals)
        return new

    def thresholds(self) -> dict[str, dict[str, Any]]:
        """symptom -> thresholds in use."""
        return self._set.thresholds()

    def to_dict(self) -> dict[str, Any]:
        """Findings and thresholds for a run report (schema ``vla-eval/diagnose/1``)."""
        self.flush()
        counts: dict[str, int] = {}
        for f in self._set.findings:
            counts[f.symptom] = counts.get(f.symptom, 0) + 1
        return {
            "schema": SCHEMA,
            "findings": [f.to_dict() for f in self._set.findings],
            "counts": counts,
            "thresholds": self.thresholds(),
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything the detectors have seen so far, as plain Python types.

        Steps still pending on the device are judged first (their findings join
        `findings`). The result holds only dicts, lists, strings, numbers, bools and
        None, so it can be stored in a checkpoint loaded with
        ``torch.load(weights_only=True)`` or in a JSON file. A `Diagnose` built with the
        same arguments and given it through `load_state_dict` raises exactly the
        findings this one would have raised on the signals that follow.
        """
        self.flush()
        return {
            "schema": STATE_SCHEMA,
            "calls": self._calls,
            "task_sums": state.encode(self._task_sums),
            **state.set_state(self._set, self._context),
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Continue from a `state_dict` taken earlier (e.g. when a run resumes).

        Raises:
            DataError: the state is not one `state_dict` wrote, or it was taken with
                other detectors than this monitor runs.
        """
        if not isinstance(saved, Mapping) or saved.get("schema") != STATE_SCHEMA:
            raise DataError(f"not a Diagnose state (expected schema {STATE_SCHEMA!r})")
        try:
            self._context = state.load_set_state(self._set, saved)
            self._calls = int(saved["calls"])
            self._task_sums = state.decode(saved["task_sums"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed Diagnose state: {exc!r}") from None
        self._pending = []

    # --- internals ----------------------------------------------------------------

    def _set_context(self, stage, lr, trainable, clip, web_ratio, temperature, new_stage) -> None:
        self._context = loop_context(stage, lr, trainable, clip, web_ratio, temperature)
        self._set.set_context(self._context, new_stage=new_stage)

    def _nonfinite_cause(
        self, reading: GradientReading | None
    ) -> tuple[str | None, tuple[tuple[str, float], ...] | None]:
        """(first parameter with a NaN/inf gradient, None), or (None, the largest
        gradients) when every gradient is finite and only their total overflowed."""
        if reading is None and self._params:
            # only the total was given: look at the gradients now
            reading = self.read_gradients()
        if reading is None:
            return None, None
        name = grads.first_nonfinite(reading)
        if name is None:  # every gradient is finite: the total overflowed
            return None, grads.largest(reading)
        return name, None

    def _array_signals(
        self,
        step: int,
        pred: Any,
        target: Any,
        task: Any,
        loss_per_task: Mapping[str, Any] | None,
        samples_per_task: Mapping[str, int] | None,
        per_sample_loss: Any,
        lr: Any,
    ) -> Signals | None:
        pred_np = target_np = mean_np = None
        if pred is not None and target is not None:
            pred_np, target_np, mean_np = action_arrays(pred, target)
        task_errors = None
        if self._task_sums:
            task_errors = {k: (n, total, None) for k, (n, total) in self._task_sums.items()}
            self._task_sums = {}
        elif loss_per_task:
            task_errors = task_losses(loss_per_task, samples_per_task, task)
        elif task is not None and (per_sample_loss is not None or pred_np is not None):
            task_errors = batch_task_errors(task, per_sample_loss, pred_np, target_np)
        if pred_np is None and task_errors is None:
            return None
        return Signals(
            step,
            lr=scalar(lr, "lr"),
            pred_actions=pred_np,
            target_actions=target_np,
            pred_mean=mean_np,
            task_errors=task_errors,
        )
