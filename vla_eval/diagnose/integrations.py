"""Adapters that run `Diagnose` inside PyTorch Lightning and Hugging Face Trainer.

Neither framework is a dependency: each adapter class is built on first access, and
if its framework is not installed the access raises a `UsageError` saying what to
install. Import the names from this module::

    from vla_eval.diagnose.integrations import DiagnoseLightningCallback
    trainer = lightning.Trainer(callbacks=[DiagnoseLightningCallback(stop_on=("critical",))])

The adapters themselves live in `vla_eval.diagnose.lightning` and
`vla_eval.diagnose.huggingface`; this module holds what they share: where a finding
goes (Python logging under ``vla_eval.diagnose``, the framework's logger, an optional
``on_finding`` function; on the rank-zero process only), when one stops training
(``stop_on``), and how eval metrics are named.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from vla_eval.diagnose.findings import SEVERITIES, SYMPTOMS, Finding
from vla_eval.errors import UsageError

__all__ = ["DiagnoseHFCallback", "DiagnoseLightningCallback"]  # noqa: F822 - built lazily

LOG = logging.getLogger("vla_eval.diagnose")
# the number a finding is logged as to a framework's logger, under "diagnose/SYMPTOM"
LEVELS = {"warning": 1.0, "critical": 2.0}


def check_stop_on(stop_on: Iterable[str] | str | None) -> tuple[str, ...]:
    """The severities and symptoms that stop training, checked.

    >>> check_stop_on(("critical", "overfitting"))
    ('critical', 'overfitting')
    """
    if stop_on is None:
        return ()
    names = (stop_on,) if isinstance(stop_on, str) else tuple(stop_on)
    bad = [n for n in names if n not in SEVERITIES and n not in SYMPTOMS]
    if bad:
        raise UsageError(
            f"stop_on: unknown {bad}; expected severities {SEVERITIES} or symptoms {SYMPTOMS}"
        )
    return names


def stops(findings: Iterable[Finding], stop_on: tuple[str, ...]) -> bool:
    """Whether a finding's severity or symptom is one ``stop_on`` names."""
    return any(f.severity in stop_on or f.symptom in stop_on for f in findings)


def finding_metrics(findings: Iterable[Finding]) -> dict[int, dict[str, float]]:
    """step -> {"diagnose/SYMPTOM": 1 (warning) or 2 (critical)}, for a metrics logger."""
    out: dict[int, dict[str, float]] = {}
    for f in findings:
        if f.step is not None:
            metrics = out.setdefault(int(f.step), {})
            key = f"diagnose/{f.symptom}"
            metrics[key] = max(metrics.get(key, 0.0), LEVELS[f.severity])
    return out


class CallbackBase:
    """What both adapters share: their options, and `_emit` for new findings.

    Args:
        on_finding: also called with each new finding (e.g. ``list.append``).
        eval_keys: Diagnose.evaluate keyword -> logged metric name.
        stop_on: stop training on a finding of these severities or symptoms, e.g.
            ``("critical",)``; every process stops at the same step.
        **diagnose_kwargs: passed to `Diagnose` (thresholds, check_every, ...).
    """

    EVAL_KEYS: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        on_finding: Callable[[Finding], None] | None = None,
        eval_keys: Mapping[str, str] | None = None,
        stop_on: Iterable[str] | str | None = None,
        **diagnose_kwargs: Any,
    ) -> None:
        super().__init__()
        self.on_finding = on_finding
        self.eval_keys = {**self.EVAL_KEYS, **(eval_keys or {})}
        self.stop_on = check_stop_on(stop_on)
        self.diagnose_kwargs = diagnose_kwargs
        self.diagnose: Any = None
        self.stopped_by: Finding | None = None  # the finding that stopped training

    def _emit(self, findings: list[Finding], rank_zero: bool) -> bool:
        """Log ``findings`` (rank zero only); whether one of them stops training."""
        if rank_zero:
            for f in findings:
                LOG.log(logging.ERROR if f.severity == "critical" else logging.WARNING, "%s", f)
                if self.on_finding is not None:
                    self.on_finding(f)
        stop = [f for f in findings if stops([f], self.stop_on)]
        if stop and self.stopped_by is None:
            self.stopped_by = stop[0]
        return bool(stop)


def per_task(metrics: Mapping[str, Any], prefixes: Mapping[str, str]) -> dict[str, Any]:
    """evaluate keyword -> {task: value} from metrics named ``prefix + task``."""
    out = {}
    for keyword, prefix in prefixes.items():
        values = {k[len(prefix) :]: metric(metrics, k) for k in metrics if k.startswith(prefix)}
        if values:
            out[keyword] = values
    return out


def metric(metrics: Mapping[str, Any], key: str) -> float | None:
    """A logged metric as a float (None when absent)."""
    value = metrics.get(key)
    if value is None:
        return None
    return float(value.item() if hasattr(value, "item") else value)


def import_first(*names: str) -> Any:
    """The first of these modules that imports, or None."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _lightning_class() -> type:
    pl = import_first("lightning.pytorch", "pytorch_lightning")
    if pl is None:
        raise UsageError(
            "DiagnoseLightningCallback needs PyTorch Lightning: pip install lightning "
            "(or pip install 'vla-eval[integrations]')"
        )
    from vla_eval.diagnose.lightning import LightningAdapter

    return type(
        "DiagnoseLightningCallback",
        (LightningAdapter, pl.Callback),
        {"__doc__": LightningAdapter.__doc__, "__module__": __name__},
    )


def _hf_class() -> type:
    transformers = import_first("transformers")
    if transformers is None:
        raise UsageError(
            "DiagnoseHFCallback needs Hugging Face transformers: pip install transformers "
            "(or pip install 'vla-eval[integrations]')"
        )
    from vla_eval.diagnose.huggingface import HFAdapter

    return type(
        "DiagnoseHFCallback",
        (HFAdapter, transformers.TrainerCallback),
        {"__doc__": HFAdapter.__doc__, "__module__": __name__},
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
