"""`Diagnose` as a PyTorch Lightning callback (mixed with ``lightning.Callback`` on use).

Use it as ``vla_eval.diagnose.integrations.DiagnoseLightningCallback``; this module
holds the behaviour and imports neither Lightning nor torch (Lightning hands it the
trainer and module). It follows Lightning's conventions: output on the global-zero
process only, ``trainer.should_stop`` to stop, ``state_dict`` in the checkpoints,
findings logged to ``trainer.loggers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from vla_eval.diagnose.findings import Finding
from vla_eval.diagnose.integrations import CallbackBase, finding_metrics, metric, per_task
from vla_eval.diagnose.monitor import Diagnose

# Diagnose.evaluate keyword -> prefix of per-task metric names ("val_loss/pick")
_PER_TASK = {"heldout_loss_per_task": "val_loss/", "heldout_accuracy_per_task": "val_accuracy/"}


class LightningAdapter(CallbackBase):
    """Lightning callback running `Diagnose` on every training batch.

    ``training_step`` may return a dict with ``loss`` and, for the action checks,
    ``pred_actions``, ``target_actions`` and ``task``. Eval metrics are read from
    ``trainer.callback_metrics`` after each validation epoch.

    Findings go to Python logging (logger ``vla_eval.diagnose``: a warning, or an
    error for a critical finding), to every logger of the trainer as
    ``diagnose/SYMPTOM`` = 1 (warning) or 2 (critical) at the finding's step, and to
    ``on_finding``; on the global-zero process only. The detectors run on every
    process, so a ``stop_on`` finding stops all of them at the same step. The
    detectors' history is the callback's ``state_dict``: a run resumed with
    ``fit(ckpt_path=...)`` judges its next steps as the uninterrupted run would.

    Args:
        on_finding: also called with each new finding.
        eval_keys: Diagnose.evaluate keyword -> logged metric name
            (defaults: heldout_loss <- "val_loss", web_loss <- "web_loss",
            web_accuracy <- "web_accuracy"). Metrics logged as ``val_loss/TASK``
            and ``val_accuracy/TASK`` are the per-task held-out loss and accuracy.
            The trainer's ``gradient_clip_val`` is passed on as ``clip``.
        stop_on: severities or symptoms that stop training (``trainer.should_stop``),
            e.g. ``("critical",)``; under DDP the processes agree on it with one
            boolean all-reduce per step (``strategy.reduce_boolean_decision``).
        **diagnose_kwargs: passed to `Diagnose` (thresholds, check_every, ...).
    """

    EVAL_KEYS: ClassVar[Mapping[str, str]] = {
        "heldout_loss": "val_loss",
        "web_loss": "web_loss",
        "web_accuracy": "web_accuracy",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading = None
        self._saved: dict[str, Any] | None = None

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.diagnose is None:
            kwargs = dict(self.diagnose_kwargs)
            clip = getattr(trainer, "gradient_clip_val", None)
            if clip and getattr(trainer, "gradient_clip_algorithm", "norm") in (None, "norm"):
                kwargs.setdefault("clip", float(clip))  # so fixes do not suggest clipping
            self.diagnose = Diagnose(pl_module, **kwargs)
        if self._saved is not None:
            self.diagnose.load_state_dict(self._saved)
            self._saved = None

    def state_dict(self) -> dict[str, Any]:
        """The detectors' history, saved in Lightning's checkpoints."""
        return {} if self.diagnose is None else {"diagnose": self.diagnose.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the detectors' history from a checkpoint (applied once set up)."""
        self._saved = state_dict.get("diagnose")
        if self.diagnose is not None and self._saved is not None:
            self.diagnose.load_state_dict(self._saved)
            self._saved = None

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        # Lightning clips after this hook: these are the raw gradients
        self._reading = self.diagnose.read_gradients()

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if outputs is None:
            return
        out = outputs if isinstance(outputs, Mapping) else {"loss": outputs}
        lr = None
        if trainer.optimizers:
            lr = trainer.optimizers[0].param_groups[0].get("lr")
        findings = self.diagnose.step(
            trainer.global_step - 1 if self._reading is not None else trainer.global_step,
            loss=out.get("loss"),
            pred_actions=out.get("pred_actions"),
            target_actions=out.get("target_actions"),
            task=out.get("task"),
            gradients=self._reading,
            lr=lr,
        )
        self._reading = None
        self._report(trainer, findings)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.diagnose is None:
            return
        metrics = trainer.callback_metrics
        values = {k: metric(metrics, m) for k, m in self.eval_keys.items()}
        values |= per_task(metrics, _PER_TASK)
        if any(v is not None for v in values.values()):
            self._report(trainer, self.diagnose.evaluate(trainer.global_step, **values))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._report(trainer, self.diagnose.flush(), can_stop=False)

    def _report(self, trainer: Any, findings: list[Finding], can_stop: bool = True) -> None:
        zero = bool(getattr(trainer, "is_global_zero", True))
        stop = self._emit(findings, zero)
        if zero and findings:
            for step, values in finding_metrics(findings).items():
                for logger in getattr(trainer, "loggers", ()):
                    logger.log_metrics(values, step=step)
        if can_stop and self.stop_on:
            # every process runs the detectors; any one that stops stops them all
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
            if stop:
                trainer.should_stop = True
