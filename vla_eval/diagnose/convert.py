"""Tensors and array-likes into the plain floats and numpy arrays detectors read.

The live monitor receives whatever a training loop has at hand (tensors on a device,
numpy arrays, lists, numbers); these helpers turn them into `Signals` fields, keep
integer action bins integer, turn logits into bins and expected bins, group
per-sample errors by task, and copy every pending tensor to the host in one transfer.
Bad input is a `UsageError` naming the argument. torch is imported inside the
functions that need it; this module must not import anything above diagnose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vla_eval.diagnose.detectors import LoopContext, TaskErrorStats
from vla_eval.errors import UsageError


def is_tensor(value: Any) -> bool:
    """Whether ``value`` looks like a torch tensor (without importing torch)."""
    return hasattr(value, "detach") and hasattr(value, "device")


def scalar(value: Any, name: str) -> float | None:
    """A plain float from a number or one-element tensor/array (forces a sync)."""
    if value is None:
        return None
    try:
        if is_tensor(value):
            value = value.detach().float().item()
        return float(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UsageError(f"{name} must be a number, got {type(value).__name__}: {exc}") from None


def array(value: Any, name: str) -> np.ndarray:
    """numpy copy of a tensor or array-like, keeping integer bins integer."""
    if is_tensor(value):
        value = value.detach()
        if value.is_floating_point():
            value = value.float()
        return value.cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be an array, got {type(value).__name__}: {exc}") from None


def detached(value: Any) -> Any:
    """A tensor detached from its graph (still on its device); anything else as is."""
    return value.detach() if is_tensor(value) else value


def to_host(rows: list[tuple[Any, ...]]) -> list[tuple[float | None, ...]]:
    """Floats for every entry of ``rows``; all tensors cross to the host in one copy."""
    tensors = [v for row in rows for v in row if is_tensor(v)]
    host: list[float] = []
    if tensors:
        import torch

        device = tensors[0].device
        # a loss given unreduced is judged by its mean
        flat = torch.stack([t.to(device=device, dtype=torch.float32).mean() for t in tensors])
        host = flat.tolist()
    it = iter(host)
    out = []
    for row in rows:
        out.append(
            tuple(
                None if v is None else next(it) if is_tensor(v) else scalar(v, "loss/grad_norm")
                for v in row
            )
        )
    return out


def action_arrays(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(predictions, targets, expected bins or None) as (batch, chunk, ...) arrays.

    Logits (one more axis than integer targets) become their argmax bins, with the
    expected bin under the softmax alongside (computed on the device for tensors). A
    (batch, dim) pair is a chunk of one.
    """
    mean_np = None
    if is_tensor(pred) and pred.ndim == target.ndim + 1 and not target.is_floating_point():
        # logits -> bins and expected bins, on the device
        logits = pred.detach().float()
        bins = _bin_index(logits)
        mean_np = array((logits.softmax(dim=-1) * bins).sum(dim=-1), "pred_actions")
        pred = logits.argmax(dim=-1)
    pred_np, target_np = array(pred, "pred_actions"), array(target, "target_actions")
    if pred_np.ndim == target_np.ndim + 1 and np.issubdtype(target_np.dtype, np.integer):
        logits_np = pred_np.astype(np.float64)
        prob = np.exp(logits_np - logits_np.max(axis=-1, keepdims=True))
        prob /= prob.sum(axis=-1, keepdims=True)
        mean_np = prob @ np.arange(prob.shape[-1], dtype=np.float64)
        pred_np = pred_np.argmax(axis=-1)
    if pred_np.shape != target_np.shape:
        raise UsageError(
            f"pred_actions shape {pred_np.shape} does not match target_actions "
            f"shape {target_np.shape}"
        )
    if pred_np.ndim == 2:  # (batch, dim): a chunk of one
        pred_np, target_np = pred_np[:, None], target_np[:, None]
        mean_np = None if mean_np is None else mean_np[:, None]
    return pred_np, target_np, mean_np


def _bin_index(logits: Any) -> Any:
    """0..bins-1 as a float tensor on the logits' device (the bin index of the last axis)."""
    import torch

    return torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype)


def batch_task_errors(
    task: Any, per_sample_loss: Any, pred: np.ndarray | None, target: np.ndarray | None
) -> dict[str, TaskErrorStats]:
    """task -> (n, sum, sum of squares) of this batch's per-sample errors: the given
    per-sample loss, else the share of wrong bins or the mean squared action error."""
    if per_sample_loss is not None:
        errors = array(per_sample_loss, "per_sample_loss").astype(np.float64).reshape(-1)
    elif np.issubdtype(pred.dtype, np.integer):
        errors = (pred != target).reshape(len(pred), -1).mean(axis=1)
    else:
        diff = (pred.astype(np.float64) - target).reshape(len(pred), -1)
        errors = (diff * diff).mean(axis=1)
    return _group(task_ids(task, len(errors)), errors)


def task_ids(task: Any, batch: int | None) -> np.ndarray:
    """Task ids of a batch as an array of strings."""
    if isinstance(task, str):
        ids = np.full(batch or 1, task)
    else:
        ids = array(task, "task").reshape(-1).astype(str)
    if batch is not None and len(ids) != batch:
        raise UsageError(f"task has {len(ids)} ids for a batch of {batch} actions")
    return ids


def _group(ids: np.ndarray, errors: np.ndarray) -> dict[str, TaskErrorStats]:
    """task -> (n, sum, sum of squares) of per-sample errors."""
    names, inverse = np.unique(ids, return_inverse=True)
    n = np.bincount(inverse, minlength=len(names))
    s = np.bincount(inverse, weights=errors, minlength=len(names))
    ss = np.bincount(inverse, weights=errors * errors, minlength=len(names))
    return {str(t): (float(n[i]), float(s[i]), float(ss[i])) for i, t in enumerate(names)}


def task_losses(
    loss_per_task: Mapping[str, Any], samples_per_task: Mapping[str, int] | None, task: Any
) -> dict[str, TaskErrorStats]:
    """task -> (samples, loss sum, None) from per-task mean losses and sample counts."""
    counts = dict(samples_per_task or {})
    if not counts and task is not None:
        ids, n = np.unique(task_ids(task, None), return_counts=True)
        counts = dict(zip(ids.tolist(), n.tolist(), strict=True))
    out = {}
    for name, value in loss_per_task.items():
        n = float(counts.get(str(name), counts.get(name, 1)))
        v = scalar(value, f"loss_per_task[{name!r}]")
        if n > 0 and v is not None:
            out[str(name)] = (n, v * n, None)
    return out


def positive(value: Any, name: str, allow_inf: bool = False) -> float | None:
    """A positive number (or None); ``allow_inf`` lets infinity through."""
    value = scalar(value, name)
    if value is not None and not (value > 0 and (allow_inf or math.isfinite(value))):
        raise UsageError(f"{name} must be a positive number, got {value}")
    return value


def per_task(
    values: Mapping[str, Any] | None, name: str, fraction: bool = False
) -> dict[str, float] | None:
    """task -> number, checked (None is dropped); accuracies must be fractions."""
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise UsageError(f"{name} must map task names to numbers, got {type(values).__name__}")
    out = {str(task): scalar(v, f"{name}[{task!r}]") for task, v in values.items()}
    if fraction:
        bad = {t: v for t, v in out.items() if v is not None and not 0.0 <= v <= 1.0}
        if bad:
            raise UsageError(f"{name} must hold fractions in [0, 1], got {bad}")
    return {t: v for t, v in out.items() if v is not None}


def loop_context(
    stage: Any,
    lr: Any,
    trainable: str | Sequence[str] | None,
    clip: Any,
    web_ratio: Any,
    temperature: Any,
) -> LoopContext:
    """A checked `LoopContext` from what a loop passes to `Diagnose`."""
    web_ratio = scalar(web_ratio, "web_ratio")
    if web_ratio is not None and not 0.0 <= web_ratio <= 1.0:
        raise UsageError(f"web_ratio must be a fraction in [0, 1], got {web_ratio}")
    if isinstance(trainable, str):
        trainable = (trainable,)
    return LoopContext(
        None if stage is None else str(stage),
        positive(lr, "lr"),
        positive(clip, "clip"),
        web_ratio,
        positive(temperature, "temperature", allow_inf=True),
        None if trainable is None else tuple(str(t) for t in trainable),
    )
