"""Offline action metrics as mergeable sufficient statistics (`OfflineMetrics`).

"Is this checkpoint learning?" is answered on held-out demonstrations: the
action-token cross-entropy, the share of predicted bins that equal the target bin
(exactly, or within ±k bins), and the continuous L1 / MSE after decoding, each
overall and per action dimension, task, split and chunk step; plus the dispersion
ratio std(pred) / std(target) per dimension (far below 1 is the signature of mode
collapse) and, for models with a language head, the web/VQA loss and answer accuracy.

The state is only sums and counts per (task, split) group, shaped (H, D), so
`merge` of metrics computed on shards gives exactly the counts of the whole and
the same sums up to floating-point addition order. This module depends on numpy and
`vla_eval.actions` only (torch tensors are accepted by duck typing), so a training
loop can import it without pulling in any evaluation code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import UsageError


def as_numpy(x: Any) -> np.ndarray:
    """numpy view of an array-like or torch tensor (detached, on the CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


@dataclass
class _Group:
    """Sums over the samples of one (task, split) group; every array is (H, D)."""

    count: np.ndarray
    exact: np.ndarray
    within: np.ndarray  # (K, H, D)
    abs_err: np.ndarray
    sq_err: np.ndarray
    pred_sum: np.ndarray
    pred_sq: np.ndarray
    target_sum: np.ndarray
    target_sq: np.ndarray
    nll_sum: np.ndarray
    nll_count: np.ndarray

    @classmethod
    def zeros(cls, k: int, h: int, d: int) -> _Group:
        i = lambda *s: np.zeros(s, np.int64)  # noqa: E731
        f = lambda *s: np.zeros(s, np.float64)  # noqa: E731
        return cls(i(h, d), i(h, d), i(k, h, d), f(h, d), f(h, d), f(h, d), f(h, d),
                   f(h, d), f(h, d), f(h, d), i(h, d))  # fmt: skip

    def add(self, other: _Group) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).__iadd__(getattr(other, name))

    def accumulate(self, within: Sequence[int], rows: np.ndarray, **batch: Any) -> None:
        """Add the ``rows`` of a batch: ``err``, ``pred``, ``target``, ``nll`` (N, H, D; nll
        may be None), the float weights ``w`` (N, H, 1) and the ``valid`` mask (N, H)."""
        err, pred, target, w = (batch[k][rows] for k in ("err", "pred", "target", "w"))
        n, h, d = target.shape
        ir = batch["valid"][rows][:, :, None].astype(np.int64)
        self.count += np.broadcast_to(ir, (n, h, d)).sum(0)
        self.exact += ((err == 0) * ir).sum(0)
        for j, k in enumerate(within):
            self.within[j] += ((err <= k) * ir).sum(0)
        diff = pred - target
        self.abs_err += (np.abs(diff) * w).sum(0)
        self.sq_err += (diff**2 * w).sum(0)
        self.pred_sum += (pred * w).sum(0)
        self.pred_sq += (pred**2 * w).sum(0)
        self.target_sum += (target * w).sum(0)
        self.target_sq += (target**2 * w).sum(0)
        if batch["nll"] is not None:
            self.nll_sum += (batch["nll"][rows] * w).sum(0)
            self.nll_count += np.broadcast_to(ir, (n, h, d)).sum(0)


@dataclass
class _Web:
    loss_sum: float = 0.0
    correct: int = 0
    count: int = 0
    by_kind: dict[str, list[float]] = field(default_factory=dict)  # kind -> [loss, correct, n]


class OfflineMetrics:
    """Accumulates offline action metrics over batches; `compute()` gives a dict.

    Args:
        tokenizer: maps continuous actions to bins (and back). Default: 256 uniform
            bins over [-1, 1].
        within: the k of the "within ±k bins" accuracies.
        dim_names: names for the action dimensions in the output (default ``d0..``).

    Example:
        >>> m = OfflineMetrics()
        >>> target = np.array([[0.0, 0.5]])
        >>> m.update(target, pred_actions=np.array([[0.0, 0.51]]), task=["pick"])
        >>> out = m.compute()
        >>> out["overall"]["accuracy"], out["overall"]["within_1"]
        (0.5, 1.0)
    """

    def __init__(
        self,
        tokenizer: ActionTokenizer | None = None,
        within: Sequence[int] = (1, 2, 5),
        dim_names: Sequence[str] | None = None,
    ) -> None:
        self.tokenizer = tokenizer or ActionTokenizer()
        self.within = tuple(int(k) for k in within)
        if any(k < 1 for k in self.within):
            raise UsageError("within-k accuracies need k >= 1")
        self.dim_names = tuple(dim_names) if dim_names is not None else None
        self.shape: tuple[int, int] | None = None  # (H, D), fixed by the first update
        self.groups: dict[tuple[str, str], _Group] = {}
        self.web = _Web()

    def reset(self) -> None:
        """Forget everything accumulated (the configuration stays)."""
        self.shape = None
        self.groups = {}
        self.web = _Web()

    # --- accumulate -----------------------------------------------------------

    def update(
        self,
        target_actions: Any,
        pred_actions: Any = None,
        pred_tokens: Any = None,
        logits: Any = None,
        nll: Any = None,
        task: Any = None,
        split: Any = None,
        mask: Any = None,
    ) -> None:
        """Add a batch.

        Args:
            target_actions: true continuous actions, (N, D) or (N, H, D).
            pred_actions: predicted continuous actions, same shape (decoded from
                `pred_tokens` when omitted).
            pred_tokens: predicted bin indices, same shape (encoded from
                `pred_actions` when omitted). One of the two is required.
            logits: bin logits (..., n_bins) for the action-token loss.
            nll: per-element negative log-likelihood of the target bins, same shape as
                `target_actions` (an alternative to `logits`, e.g. from torch's
                cross_entropy with reduction="none").
            task: task name per sample (N,), or one name for the batch.
            split: split name per sample (N,), or one name for the batch.
            mask: bool (N,) or (N, H): False marks padding (chunk steps past the end
                of an episode), which is left out of every metric.
        """
        target = as_numpy(target_actions).astype(np.float64, copy=False)
        if target.ndim == 2:
            target = target[:, None, :]
        if target.ndim != 3:
            raise UsageError(
                f"target actions must be (N, D) or (N, H, D), got shape {target.shape}"
            )
        n, h, d = target.shape
        if self.shape is None:
            self.shape = (h, d)
        elif self.shape != (h, d):
            raise UsageError(f"action shape (H, D) changed from {self.shape} to {(h, d)}")
        if pred_actions is None and pred_tokens is None:
            raise UsageError("give pred_actions or pred_tokens")

        tok = self.tokenizer
        target_bins = tok.encode(target)
        if pred_tokens is not None:
            pred_bins = as_numpy(pred_tokens).reshape(target.shape).astype(np.int64)
        else:
            pred_bins = tok.encode(self._shaped(pred_actions, target.shape, "pred_actions"))
        if pred_actions is not None:
            pred = self._shaped(pred_actions, target.shape, "pred_actions")
        else:
            pred = tok.decode(pred_bins)
        if not np.all(np.isfinite(pred)):
            raise UsageError("predicted actions contain NaN or inf")
        if not np.all(np.isfinite(target)):
            raise UsageError("target actions contain NaN or inf")

        if nll is None and logits is not None:
            nll = _nll_from_logits(as_numpy(logits), target_bins)
        if nll is not None:
            nll = self._shaped(nll, target.shape, "nll")

        valid = _valid(mask, n, h)
        w = valid[:, :, None].astype(np.float64)  # (N, H, 1)

        tasks = _labels(task, n, "task")
        splits = _labels(split, n, "split")
        err = np.abs(pred_bins - target_bins)
        task_names, task_code = np.unique(tasks, return_inverse=True)
        split_names, split_code = np.unique(splits, return_inverse=True)
        keys = task_code * len(split_names) + split_code
        for key in np.unique(keys):
            rows = keys == key
            t, sp = divmod(int(key), len(split_names))
            g = self._group(str(task_names[t]), str(split_names[sp]))
            g.accumulate(
                self.within, rows, err=err, pred=pred, target=target, nll=nll, w=w, valid=valid
            )

    def update_web(self, answer_logits: Any, answer_targets: Any, kind: Any = None) -> None:
        """Add a batch of web/VQA answers: logits (N, V) and target answer ids (N,)."""
        logits = as_numpy(answer_logits).astype(np.float64)
        targets = as_numpy(answer_targets).astype(np.int64)
        if logits.ndim != 2 or targets.shape != (logits.shape[0],):
            raise UsageError("answer logits must be (N, V) and targets (N,)")
        nll = _nll_from_logits(logits, targets)
        correct = logits.argmax(-1) == targets
        self.web.loss_sum += float(nll.sum())
        self.web.correct += int(correct.sum())
        self.web.count += len(targets)
        if kind is not None:
            kinds = _labels(kind, len(targets), "kind")
            for name in np.unique(kinds):
                rows = kinds == name
                acc = self.web.by_kind.setdefault(str(name), [0.0, 0.0, 0.0])
                acc[0] += float(nll[rows].sum())
                acc[1] += float(correct[rows].sum())
                acc[2] += float(rows.sum())

    def merge(self, other: OfflineMetrics) -> OfflineMetrics:
        """Add another instance's statistics into this one (e.g. another shard)."""
        if other.within != self.within or other.tokenizer != self.tokenizer:
            raise UsageError("cannot merge metrics computed with different settings")
        if other.shape is not None:
            if self.shape is not None and self.shape != other.shape:
                raise UsageError(f"cannot merge action shapes {self.shape} and {other.shape}")
            self.shape = other.shape
        for (task, split), g in other.groups.items():
            self._group(task, split).add(g)
        self.web.loss_sum += other.web.loss_sum
        self.web.correct += other.web.correct
        self.web.count += other.web.count
        for kind, vals in other.web.by_kind.items():
            acc = self.web.by_kind.setdefault(kind, [0.0, 0.0, 0.0])
            for i in range(3):
                acc[i] += vals[i]
        return self

    # --- results ------------------------------------------------------------

    def compute(self) -> dict[str, Any]:
        """All metrics as plain data; undefined values (no samples) are None."""
        if self.shape is None:
            raise UsageError("no samples: call update() with at least one batch first")
        h, d = self.shape
        names = list(self.dim_names) if self.dim_names else [f"d{i}" for i in range(d)]
        if len(names) != d:
            raise UsageError(f"{len(names)} dimension names for {d} action dimensions")
        total = _Group.zeros(len(self.within), h, d)
        by_task: dict[str, _Group] = {}
        by_split: dict[str, _Group] = {}
        for (task, split), g in self.groups.items():
            total.add(g)
            by_task.setdefault(task, _Group.zeros(len(self.within), h, d)).add(g)
            by_split.setdefault(split, _Group.zeros(len(self.within), h, d)).add(g)

        out: dict[str, Any] = {
            "overall": self._summary(total, axes=(0, 1)),
            "per_dim": {
                name: self._summary(total, axes=0, index=i) for i, name in enumerate(names)
            },
            "per_chunk_step": [self._summary(total, axes=1, index=j) for j in range(h)],
            "per_task": {t: self._summary(g, axes=(0, 1)) for t, g in sorted(by_task.items())},
            "per_split": {s: self._summary(g, axes=(0, 1)) for s, g in sorted(by_split.items())},
            "per_task_split": [
                {"task": t, "split": s, **self._summary(g, axes=(0, 1))}
                for (t, s), g in sorted(self.groups.items())
            ],
            "dispersion_ratio": dict(zip(names, _dispersion(total), strict=True)),
            "chunk": h,
            "action_dim": d,
            "within_k": list(self.within),
        }
        if self.web.count:
            out["web"] = {
                "loss": self.web.loss_sum / self.web.count,
                "accuracy": self.web.correct / self.web.count,
                "count": self.web.count,
                "per_kind": {
                    k: {"loss": v[0] / v[2], "accuracy": v[1] / v[2], "count": int(v[2])}
                    for k, v in sorted(self.web.by_kind.items())
                },
            }
        return out

    # --- helpers -------------------------------------------------------------

    def _group(self, task: str, split: str) -> _Group:
        key = (task, split)
        if key not in self.groups:
            h, d = self.shape  # type: ignore[misc]
            self.groups[key] = _Group.zeros(len(self.within), h, d)
        return self.groups[key]

    @staticmethod
    def _shaped(x: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
        a = as_numpy(x).astype(np.float64, copy=False)
        if a.size != int(np.prod(shape)):
            raise UsageError(f"{name} has shape {a.shape}; expected {shape} like the targets")
        return a.reshape(shape)

    def _summary(self, g: _Group, axes: Any, index: int | None = None) -> dict[str, Any]:
        """Reduce a group's (H, D) sums: over both axes, or keep one entry of one axis."""

        def pick(a: np.ndarray) -> float:
            if axes == (0, 1):
                return float(a.sum(axis=(-2, -1)))
            summed = a.sum(axis=-2 if axes == 0 else -1)
            return float(summed[..., index])

        def pick_k(a: np.ndarray) -> list[float]:
            return [pick(a[j]) for j in range(a.shape[0])]

        n = pick(g.count)
        nn = pick(g.nll_count)
        out: dict[str, Any] = {"count": int(n)}
        out["loss"] = pick(g.nll_sum) / nn if nn else None
        out["accuracy"] = pick(g.exact) / n if n else None
        for k, v in zip(self.within, pick_k(g.within), strict=True):
            out[f"within_{k}"] = v / n if n else None
        out["l1"] = pick(g.abs_err) / n if n else None
        out["mse"] = pick(g.sq_err) / n if n else None
        return out


def _dispersion(g: _Group) -> list[float | None]:
    """std(pred) / std(target) per action dimension over all valid samples and steps."""
    n = g.count.sum(0).astype(np.float64)
    out: list[float | None] = []
    for i in range(n.shape[0]):
        if n[i] < 2:
            out.append(None)
            continue
        var_p = g.pred_sq.sum(0)[i] / n[i] - (g.pred_sum.sum(0)[i] / n[i]) ** 2
        var_t = g.target_sq.sum(0)[i] / n[i] - (g.target_sum.sum(0)[i] / n[i]) ** 2
        # A constant target dimension has no dispersion to compare against.
        if var_t <= 1e-12:
            out.append(None)
        else:
            out.append(float(np.sqrt(max(var_p, 0.0) / var_t)))
    return out


def _valid(mask: Any, n: int, h: int) -> np.ndarray:
    """The (N, H) bool mask of real (not padded) entries; None: all of them."""
    valid = np.ones((n, h), bool) if mask is None else as_numpy(mask).astype(bool)
    if valid.ndim == 1:
        valid = np.broadcast_to(valid[:, None], (n, h))
    if valid.shape != (n, h):
        raise UsageError(f"mask must be (N,) or (N, H) = {(n, h)}, got {valid.shape}")
    return valid


def _labels(values: Any, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, "all", dtype=object)
    if isinstance(values, str):
        return np.full(n, values, dtype=object)
    arr = as_numpy(values)
    if arr.shape != (n,):
        raise UsageError(f"{name} must have one entry per sample ({n}), got shape {arr.shape}")
    return arr.astype(str).astype(object)


def _nll_from_logits(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] along the last axis, computed stably."""
    logits = logits.astype(np.float64, copy=False)
    if logits.shape[:-1] != targets.shape:
        raise UsageError(
            f"logits {logits.shape} do not match targets {targets.shape} (+ a bins axis)"
        )
    if targets.size and (targets.min() < 0 or targets.max() >= logits.shape[-1]):
        raise UsageError("target index outside the logits' last axis")
    top = logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(axis=-1)) + top[..., 0]
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return lse - picked
