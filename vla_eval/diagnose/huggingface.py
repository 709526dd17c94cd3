"""`Diagnose` as a Hugging Face ``TrainerCallback`` (mixed with it on use).

Use it as ``vla_eval.diagnose.integrations.DiagnoseHFCallback``; this module holds the
behaviour and imports neither transformers nor torch at import time. It judges every
optimizer step with values it reads itself, because the Trainer's logs are not the
step's values: with ``logging_nan_inf_filter`` (on by default) a NaN loss is replaced
by the running mean, and the logged loss is an average over ``logging_steps``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vla_eval.diagnose import gradients as grads
from vla_eval.diagnose.findings import Finding
from vla_eval.diagnose.integrations import (
    LOG,
    CallbackBase,
    finding_metrics,
    metric,
    per_task,
)
from vla_eval.diagnose.monitor import Diagnose

STATE_FILE = "diagnose_state.json"  # in each checkpoint-N folder the Trainer saves
_PER_TASK = {"heldout_loss_per_task": "eval_loss/", "heldout_accuracy_per_task": "eval_accuracy/"}


@dataclass(frozen=True)
class _Step:
    """What one optimizer step showed, read before the optimizer moved."""

    step: int
    loss: Any
    reading: Any
    lr: float | None
    observed: dict[str, Any]


class HFAdapter(CallbackBase):
    """Hugging Face `TrainerCallback` running `Diagnose` on every optimizer step.

    Each step is judged on its own loss and gradients, read past the Trainer's logs:
    the loss from the model's output (a forward hook; or what `observe` is given),
    the gradients at ``on_pre_optimizer_step``. The Trainer has clipped them there,
    so with ``max_grad_norm`` > 0 the pre-clipping norm comes from the logs (at
    logging steps; set ``logging_steps=1`` to judge every step's norm) while NaN/inf
    gradients are caught on every step; without clipping the norm read is the real
    one. Eval metrics come from ``on_evaluate``.

    Findings go to Python logging (logger ``vla_eval.diagnose``), into
    ``state.log_history`` (and the ``logs`` of that step's ``on_log``) as
    ``diagnose/SYMPTOM`` = 1 (warning) or 2 (critical), and to ``on_finding``; on
    the world-process-zero only. ``stop_on`` sets ``control.should_training_stop``.
    The detectors' history is saved as ``diagnose_state.json`` in each checkpoint
    folder and read back when ``train(resume_from_checkpoint=...)`` resumes from a
    checkpoint of ``args.output_dir``. Pending steps are judged at ``on_train_end``.

    Args:
        on_finding: also called with each new finding.
        eval_keys: Diagnose.evaluate keyword -> metric name (defaults:
            heldout_loss <- "eval_loss", web_loss <- "eval_web_loss",
            web_accuracy <- "eval_web_accuracy"). Metrics named ``eval_loss/TASK``
            and ``eval_accuracy/TASK`` are the per-task held-out loss and accuracy.
            ``max_grad_norm`` and ``learning_rate`` are passed on as ``clip`` and
            ``lr``.
        stop_on: severities or symptoms that stop training, e.g. ``("critical",)``.
        **diagnose_kwargs: passed to `Diagnose`.

    The Trainer shows callbacks no predictions; for the action checks (collapse,
    jitter, per-task error) have ``compute_loss`` hand each training batch to
    `observe`.
    """

    EVAL_KEYS: ClassVar[Mapping[str, str]] = {
        "heldout_loss": "eval_loss",
        "web_loss": "eval_web_loss",
        "web_accuracy": "eval_web_accuracy",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._observed: dict[str, Any] = {}
        self._losses: list[Any] = []  # the model's losses of this step's micro-batches
        self._given: list[Any] = []  # losses handed to observe
        self._pending: _Step | None = None
        self._hook: Any = None
        self._clipping = False

    def observe(
        self,
        *,
        loss: Any = None,
        pred_actions: Any = None,
        target_actions: Any = None,
        task: Any = None,
    ) -> None:
        """Hand over a training batch's loss and actions (from ``compute_loss``).

        Call from a ``Trainer.compute_loss`` override when ``model.training``; the
        latest batch of each step is judged with that step.

        Args:
            loss: the batch's loss, where the model's output does not hold it.
            pred_actions: predicted actions (batch, [chunk,] dim) or logits.
            target_actions: the batch's target actions.
            task: task id per sample (strings or integers), or one string.
        """
        if loss is not None:
            self._given.append(loss.detach() if hasattr(loss, "detach") else loss)
        values = {"pred_actions": pred_actions, "target_actions": target_actions, "task": task}
        self._observed = {
            k: v.detach() if hasattr(v, "detach") else v for k, v in values.items() if v is not None
        }

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
    ) -> None:
        if self.diagnose is None:
            kwargs = dict(self.diagnose_kwargs)
            if getattr(args, "max_grad_norm", None):
                kwargs.setdefault("clip", float(args.max_grad_norm))
            if getattr(args, "learning_rate", None):
                kwargs.setdefault("lr", float(args.learning_rate))  # the base LR
            self.diagnose = Diagnose(model, **kwargs)
        self._clipping = (getattr(args, "max_grad_norm", None) or 0) > 0
        if self._hook is None and hasattr(model, "register_forward_hook"):
            self._hook = model.register_forward_hook(self._capture)
        if state.global_step > 0:
            self._restore(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._losses, self._given = [], []

    def on_pre_optimizer_step(
        self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any
    ) -> None:
        if self._pending is not None:  # a step the Trainer was to log but did not
            self._judge(args, state, control)
        losses = self._given or self._losses
        lr = optimizer.param_groups[0].get("lr") if optimizer is not None else None
        self._pending = _Step(
            state.global_step + 1,  # numbered as the Trainer logs this step
            sum(losses) / len(losses) if losses else None,
            self.diagnose.read_gradients(),
            lr,
            self._observed,
        )
        self._observed, self._losses, self._given = {}, [], []

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not control.should_log:  # else on_log judges it, with the logged grad norm
            self._judge(args, state, control)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        logs = logs if logs is not None else {}
        pending = self._pending
        if pending is not None and pending.step == state.global_step and "loss" in logs:
            self._judge(args, state, control, logs)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
    ) -> None:
        metrics = metrics or {}
        values = {k: metric(metrics, m) for k, m in self.eval_keys.items()}
        values |= per_task(metrics, _PER_TASK)
        if any(v is not None for v in values.values()):
            found = self.diagnose.evaluate(state.global_step, **values)
            self._report(args, state, control, found)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and self.diagnose is not None and folder.is_dir():
            from vla_eval.results import write_json

            write_json(folder / STATE_FILE, self.diagnose.state_dict())

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._judge(args, state, control)
        self._report(args, state, control, self.diagnose.flush(), can_stop=False)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # --- internals ----------------------------------------------------------------

    def _capture(self, module: Any, inputs: Any, output: Any) -> None:
        """Forward hook: keep the loss of each training forward pass."""
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, Mapping) else None
        if loss is None and isinstance(output, (tuple, list)) and output:
            loss = output[0]
        if hasattr(loss, "detach") and loss.ndim == 0:
            self._losses.append(loss.detach())

    def _judge(self, args: Any, state: Any, control: Any, logs: Any = None) -> None:
        """Judge the pending step; ``logs`` are the Trainer's logs of that step."""
        p, self._pending = self._pending, None
        if p is None:
            return
        logs = logs or {}
        loss = p.loss if p.loss is not None else logs.get("loss")
        gradients, grad_norm, name = p.reading, None, None
        if self._clipping and p.reading is not None:
            # clipped already: a NaN stays NaN, but a finite norm is the clipped one
            gradients, grad_norm = None, logs.get("grad_norm")
            name = grads.first_nonfinite(p.reading)
            if name is not None:
                grad_norm = math.nan
        found = self.diagnose.step(
            p.step,
            loss=loss,
            grad_norm=grad_norm,
            gradients=gradients,
            nonfinite_param=name,
            lr=p.lr,
            **p.observed,
        )
        self._report(args, state, control, found, logs=logs)

    def _report(
        self,
        args: Any,
        state: Any,
        control: Any,
        findings: list[Finding],
        logs: Any = None,
        can_stop: bool = True,
    ) -> None:
        zero = bool(getattr(state, "is_world_process_zero", True))
        stop = self._emit(findings, zero)
        if zero:
            for step, values in finding_metrics(findings).items():
                state.log_history.append({**values, "step": step})
                if logs is not None and step == state.global_step:
                    logs.update(values)
        if can_stop and self.stop_on and _any_process(stop, args):
            control.should_training_stop = True

    def _restore(self, folder: Path) -> None:
        path = folder / STATE_FILE
        if not path.is_file():
            LOG.warning("no %s in %s: Diagnose starts without its history", STATE_FILE, folder)
            return
        from vla_eval.inputs import load_json_file

        self.diagnose.load_state_dict(load_json_file(path))


def _any_process(flag: bool, args: Any) -> bool:
    """Whether ``flag`` holds on any process (every process calls this at once)."""
    if getattr(args, "world_size", 1) <= 1:
        return flag
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor(float(flag), device=args.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
