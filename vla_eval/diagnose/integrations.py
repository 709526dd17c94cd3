"""Adapters that run `Diagnose` inside PyTorch Lightning and Hugging Face Trainer.

Neither framework is a dependency: each adapter class is built on first access, and
if its framework is not installed the access raises a `UsageError` saying what to
install. Import the names from this module::

    from vla_eval.diagnose.integrations import DiagnoseLightningCallback
    trainer = lightning.Trainer(callbacks=[DiagnoseLightningCallback()])

Both adapters read the gradients before clipping, pass the loss and (Lightning) any
``pred_actions`` / ``target_actions`` / ``task`` the training step returns (Hugging
Face: that ``compute_loss`` hands to ``callback.observe``), feed eval metrics to
`Diagnose.evaluate`, and print each finding as it is raised.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

from vla_eval.diagnose.findings import Finding
from vla_eval.diagnose.monitor import Diagnose
from vla_eval.errors import UsageError

__all__ = ["DiagnoseHFCallback", "DiagnoseLightningCallback"]  # noqa: F822 - built lazily

_EVAL_KEYS = {"heldout_loss": "val_loss", "web_loss": "web_loss", "web_accuracy": "web_accuracy"}
_HF_EVAL_KEYS = {
    "heldout_loss": "eval_loss",
    "web_loss": "eval_web_loss",
    "web_accuracy": "eval_web_accuracy",
}


# Diagnose.evaluate keyword -> prefix of per-task metric names ("val_loss/pick")
_PER_TASK = {"heldout_loss_per_task": "val_loss/", "heldout_accuracy_per_task": "val_accuracy/"}
_HF_PER_TASK = {
    "heldout_loss_per_task": "eval_loss/",
    "heldout_accuracy_per_task": "eval_accuracy/",
}


def _per_task(metrics: Mapping[str, Any], prefixes: Mapping[str, str]) -> dict[str, Any]:
    """evaluate keyword -> {task: value} from metrics named ``prefix + task``."""
    out = {}
    for keyword, prefix in prefixes.items():
        values = {k[len(prefix) :]: _metric(metrics, k) for k in metrics if k.startswith(prefix)}
        if values:
            out[keyword] = values
    return out


def _import_first(*names: str) -> Any:
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _print_finding(finding: Finding) -> None:
    print(finding, file=sys.stderr)


def _metric(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    return float(value.item() if hasattr(value, "item") else value)


# The adapters are plain classes; `_lightning_class` / `_hf_class` mix each with its
# framework's callback base class once that framework has been imported.
class _LightningCallbackAdapter:
    """Lightning callback running `Diagnose` on every training batch.

    ``training_step`` may return a dict with ``loss`` and, for the action checks,
    ``pred_actions``, ``target_actions`` and ``task``. Eval metrics are read from
    ``trainer.callback_metrics`` after each validation epoch.

    Args:
        on_finding: called with each new finding (default: print to stderr).
        eval_keys: Diagnose.evaluate keyword -> logged metric name
            (defaults: heldout_loss <- "val_loss", web_loss <- "web_loss",
            web_accuracy <- "web_accuracy"). Metrics logged as ``val_loss/TASK``
            and ``val_accuracy/TASK`` are the per-task held-out loss and accuracy.
            The trainer's ``gradient_clip_val`` is passed on as ``clip``.
        **diagnose_kwargs: passed to `Diagnose` (thresholds, check_every, ...).
    """

    def __init__(
        self,
        on_finding: Callable[[Finding], None] | None = _print_finding,
        eval_keys: Mapping[str, str] | None = None,
        **diagnose_kwargs: Any,
    ) -> None:
        super().__init__()
        self.on_finding = on_finding
        self.eval_keys = {**_EVAL_KEYS, **(eval_keys or {})}
        self.diagnose_kwargs = diagnose_kwargs
        self.diagnose: Diagnose | None = None
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
        self._report(
            self.diagnose.step(
                trainer.global_step - 1 if self._reading is not None else trainer.global_step,
                loss=out.get("loss"),
                pred_actions=out.get("pred_actions"),
                target_actions=out.get("target_actions"),
                task=out.get("task"),
                gradients=self._reading,
                lr=lr,
            )
        )
        self._reading = None

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or self.diagnose is None:
            return
        metrics = trainer.callback_metrics
        values = {k: _metric(metrics, m) for k, m in self.eval_keys.items()}
        values |= _per_task(metrics, _PER_TASK)
        if any(v is not None for v in values.values()):
            self._report(self.diagnose.evaluate(trainer.global_step, **values))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._report(self.diagnose.flush())

    def _report(self, findings: list[Finding]) -> None:
        if self.on_finding is not None:
            for f in findings:
                self.on_finding(f)


def _lightning_class() -> type:
    pl = _import_first("lightning.pytorch", "pytorch_lightning")
    if pl is None:
        raise UsageError("DiagnoseLightningCallback needs PyTorch Lightning: pip install lightning")

    return type(
        "DiagnoseLightningCallback",
        (_LightningCallbackAdapter, pl.Callback),
        {"__doc__": _LightningCallbackAdapter.__doc__, "__module__": __name__},
    )


class _HFCallbackAdapter:
    """Hugging Face `TrainerCallback` running `Diagnose`.

    The Trainer exposes the loss and the pre-clipping gradient norm only in its
    logs, so the loss-based checks run at every logging step (set
    ``logging_steps=1`` to judge every step); a NaN gradient is caught on the
    step it happens, before the optimizer step. Eval metrics come from
    ``on_evaluate``.

    Args:
        on_finding: called with each new finding (default: print to stderr).
        eval_keys: Diagnose.evaluate keyword -> metric name (defaults:
            heldout_loss <- "eval_loss", web_loss <- "eval_web_loss",
            web_accuracy <- "eval_web_accuracy"). Metrics named ``eval_loss/TASK``
            and ``eval_accuracy/TASK`` are the per-task held-out loss and accuracy.
            ``max_grad_norm`` and ``learning_rate`` are passed on as ``clip`` and
            ``lr``.
        **diagnose_kwargs: passed to `Diagnose`.

    The Trainer shows callbacks no predictions; for the action checks (collapse,
    jitter, per-task error) have ``compute_loss`` hand each training batch to
    `observe`. Without it the callback judges the logs alone.
    """

    def __init__(
        self,
        on_finding: Callable[[Finding], None] | None = _print_finding,
        eval_keys: Mapping[str, str] | None = None,
        **diagnose_kwargs: Any,
    ) -> None:
        self.on_finding = on_finding
        self.eval_keys = {**_HF_EVAL_KEYS, **(eval_keys or {})}
        self.diagnose_kwargs = diagnose_kwargs
        self.diagnose: Diagnose | None = None
        self._nonfinite: tuple[int, str] | None = None
        self._observed: dict[str, Any] = {}

    def observe(
        self, *, pred_actions: Any = None, target_actions: Any = None, task: Any = None
    ) -> None:
        """Keep a training batch's actions for the action checks at the next log.

        Call from a ``Trainer.compute_loss`` override (when ``model.training``); the
        latest batch before each logging step is judged with that step's loss.

        Args:
            pred_actions: predicted actions (batch, [chunk,] dim) or logits.
            target_actions: the batch's target actions.
            task: task id per sample (strings or integers), or one string.
        """
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

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        # the Trainer has already clipped here, but clipping keeps NaN as NaN
        if self._nonfinite is None:
            name = self.diagnose.first_nonfinite_parameter()
            if name is not None:  # numbered like the log of this step
                self._nonfinite = (state.global_step + 1, name)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
        logs = logs or {}
        if "loss" not in logs and self._nonfinite is None:
            return
        step, name = (state.global_step, None)
        grad_norm = logs.get("grad_norm")
        if self._nonfinite is not None:
            step, name = self._nonfinite
            grad_norm = float("nan")
            self._nonfinite = None
        observed, self._observed = self._observed, {}
        self._report(
            self.diagnose.step(
                step,
                loss=logs.get("loss"),
                grad_norm=grad_norm,
                nonfinite_param=name,
                lr=logs.get("learning_rate"),
                **observed,
            )
        )

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
    ) -> None:
        metrics = metrics or {}
        values = {k: _metric(metrics, m) for k, m in self.eval_keys.items()}
        values |= _per_task(metrics, _HF_PER_TASK)
        if any(v is not None for v in values.values()):
            self._report(self.diagnose.evaluate(state.global_step, **values))

    def _report(self, findings: list[Finding]) -> None:
        if self.on_finding is not None:
            for f in findings:
                self.on_finding(f)


def _hf_class() -> type:
    transformers = _import_first("transformers")
    if transformers is None:
        raise UsageError(
            "DiagnoseHFCallback needs Hugging Face transformers: pip install transformers"
        )

    return type(
        "DiagnoseHFCallback",
        (_HFCallbackAdapter, transformers.TrainerCallback),
        {"__doc__": _HFCallbackAdapter.__doc__, "__module__": __name__},
    )


_BUILDERS = {"DiagnoseLightningCallback": _lightning_class, "DiagnoseHFCallback": _hf_class}
_BUILT: dict[str, type] = {}


def __getattr__(name: str) -> type:
    """Build an adapter class on first access (imports its framework only then)."""
    if name not in _BUILDERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _BUILT:
        _BUILT[name] = _BUILDERS[name]()
    return _BUILT[name]
