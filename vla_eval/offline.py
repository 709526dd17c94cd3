"""Offline action metrics as mergeable sufficient statistics (`OfflineMetrics`).

"Is this checkpoint learning?" is answered on held-out demonstrations: the
action-token cross-entropy, the share of predicted bins that equal the target bin
(exactly, or within ±k bins), and the continuous L1 / MSE after decoding, each
overall and per action dimension, task, split and chunk step; plus the dispersion
ratio std(pred) / std(target) per dimension (far below 1 is the signature of mode
collapse) and, for models with a language head, the web/VQA loss and answer accuracy.

The state is only sums and counts per (task, split) group, shaped (H, D), so
`merge` of metrics computed on shards gives exactly the counts of the whole and
the same sums up to floating-point addition order. numpy only at import time; torch
tensors are accepted by duck typing.

Below the metrics class sits what ``vla-eval offline`` runs: `evaluate_checkpoints`
(held-out demonstrations of the built-in world or dataset files, batched forward
passes under ``torch.no_grad``), `score_predictions` (any model's predictions from an
``.npz``), `format_offline` and `write_offline`. They import torch, the trainer's data
code and the plotting module inside the functions, so importing this module, or
scoring a predictions file, never loads torch.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import DataError, UsageError

SCHEMA = "vla-eval/offline/1"


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

        valid = np.ones((n, h), bool) if mask is None else as_numpy(mask).astype(bool)
        if valid.ndim == 1:
            valid = np.broadcast_to(valid[:, None], (n, h))
        if valid.shape != (n, h):
            raise UsageError(f"mask must be (N,) or (N, H) = {(n, h)}, got {valid.shape}")
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
            wr = w[rows]
            ir = valid[rows][:, :, None].astype(np.int64)
            g.count += np.broadcast_to(ir, (int(rows.sum()), h, d)).sum(0)
            g.exact += ((err[rows] == 0) * ir).sum(0)
            for j, k in enumerate(self.within):
                g.within[j] += ((err[rows] <= k) * ir).sum(0)
            diff = pred[rows] - target[rows]
            g.abs_err += (np.abs(diff) * wr).sum(0)
            g.sq_err += (diff**2 * wr).sum(0)
            g.pred_sum += (pred[rows] * wr).sum(0)
            g.pred_sq += (pred[rows] ** 2 * wr).sum(0)
            g.target_sum += (target[rows] * wr).sum(0)
            g.target_sq += (target[rows] ** 2 * wr).sum(0)
            if nll is not None:
                g.nll_sum += (nll[rows] * wr).sum(0)
                g.nll_count += np.broadcast_to(ir, (int(rows.sum()), h, d)).sum(0)

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


# === evaluating checkpoints and predictions files =============================================
#
# Everything below serves `vla-eval offline`. torch and the trainer's data code are imported
# inside the functions that need them, so scoring a predictions file never loads torch.

#: Keys a predictions file may hold (DESIGN.md); `target_actions` and one `pred_*` are required.
PREDICTION_KEYS: tuple[str, ...] = (
    "pred_tokens",
    "pred_actions",
    "target_actions",
    "task",
    "split",
    "logits",
    "mask",
    "dim_names",
)
#: Offset of the held-out web VQA seed from the data seed, as the trainer uses it.
WEB_SEED_OFFSET = 1_000_003
#: Action dimensions drawn in open-loop traces (the ones the built-in world reads).
TRACE_DIMS: tuple[str, ...] = ("dx", "dy", "dyaw", "gripper")


@dataclass
class HeldoutData:
    """Evaluation data: (split, DemoDataset) parts and an optional web VQA set.

    Attributes:
        demos: list of (split name, `DemoDataset` holding only that split's samples).
        web: a `WebDataset`, or None to skip the language-retention metrics.
        source: plain-data description written into the results.
    """

    demos: list[tuple[str, Any]]
    web: Any | None
    source: dict[str, Any]


def parse_splits(text: str | None, allowed: Sequence[str] | None = None) -> list[str] | None:
    """``"seen,unseen"`` -> ``["seen", "unseen"]`` (None stays None: every split).

    >>> parse_splits("unseen, seen")
    ['unseen', 'seen']
    """
    if text is None:
        return None
    splits = list(dict.fromkeys(s.strip() for s in str(text).split(",") if s.strip()))
    if not splits:
        raise UsageError("--split needs at least one split name, e.g. --split seen,unseen")
    if allowed is not None:
        unknown = [s for s in splits if s not in allowed]
        if unknown:
            raise UsageError(
                f"unknown split {unknown[0]!r}; the built-in world has {', '.join(allowed)}"
            )
    return splits


def builtin_heldout(
    splits: Sequence[str] | None = None,
    per_task: int = 20,
    horizon: int = 8,
    seed: int = 0,
    web_examples: int = 500,
) -> HeldoutData:
    """Held-out demonstrations of the built-in world, and its held-out web VQA questions.

    Deterministic for given arguments. Held-out episodes use odd episode seeds and
    training episodes even ones, so no held-out episode was ever trained on; the web
    questions use seed ``seed + 1_000_003``, the trainer's held-out web stream.

    Args:
        splits: splits to generate (default: seen and unseen).
        per_task: episodes per task family and split.
        horizon: action chunk length H of the targets (the model's).
        seed: data seed.
        web_examples: web VQA questions (0: none).
    """
    from vla_eval.envs.base import SPLITS
    from vla_eval.trainer import data as data_mod

    splits = list(SPLITS) if splits is None else list(splits)
    per_task = _positive(per_task, "--per-task")
    if web_examples < 0:
        raise UsageError(f"--web-examples must be >= 0, got {web_examples}")
    demos = [(s, data_mod.heldout_dataset(s, per_task, horizon, seed)) for s in splits]
    web_seed = seed + WEB_SEED_OFFSET
    web = data_mod.make_web_dataset(web_examples, seed=web_seed) if web_examples else None
    source = {
        "kind": "built-in",
        "splits": splits,
        "per_task": per_task,
        "seed": seed,
        "web_seed": web_seed if web else None,
        "web_examples": web_examples,
    }
    return HeldoutData(demos, web, source)


def load_heldout(path: str | Any, splits: Sequence[str] | None = None) -> HeldoutData:
    """Held-out data from dataset ``.npz`` files written by `save_dataset`.

    Args:
        path: one ``.npz`` or a directory whose ``*.npz`` files are all read. Demo
            datasets give the demonstrations (split by their ``split`` field); a web
            VQA dataset, if present, gives the language-retention set.
        splits: keep only these splits (default: every split in the data).
    """
    from pathlib import Path

    from vla_eval.envs.base import SPLITS
    from vla_eval.trainer import data as data_mod

    root = Path(path)
    if root.is_dir():
        files = sorted(root.glob("*.npz"))
        if not files:
            raise UsageError(f"--data {root}: the directory holds no .npz dataset files")
    elif root.is_file():
        files = [root]
    else:
        raise UsageError(f"--data {root}: no such file or directory")
    demos: list[tuple[str, Any]] = []
    web = None
    for f in files:
        ds = data_mod.load_dataset(f)
        if isinstance(ds, data_mod.WebDataset):
            if web is not None:
                raise UsageError(f"--data {root}: more than one web VQA dataset")
            web = ds
            continue
        if len(ds) == 0:
            continue
        if ds.split.min() < 0 or ds.split.max() >= len(SPLITS):
            raise DataError(f"{f}: split indices outside 0..{len(SPLITS) - 1}")
        for i, name in enumerate(SPLITS):
            rows = ds.split == i
            if rows.any() and (splits is None or name in splits):
                demos.append((name, ds.subset(rows)))
    found = sorted({s for s, _ in demos})
    if splits is not None:
        missing = [s for s in splits if s not in found]
        if missing:
            raise UsageError(f"--data {root} has no demonstrations of split {missing[0]!r}")
    if not demos:
        raise UsageError(f"--data {root} holds no demonstrations to evaluate on")
    source = {
        "kind": "files",
        "path": str(root),
        "files": [str(f) for f in files],
        "splits": found if splits is None else list(splits),
        "web_examples": 0 if web is None else len(web),
    }
    return HeldoutData(demos, web, source)


def evaluate_model(
    model: Any,
    tokenizer: ActionTokenizer,
    data: HeldoutData,
    *,
    batch_size: int = 256,
    text_vocab: Sequence[str] | None = None,
    n_traces: int = 4,
    progress: bool = False,
) -> dict[str, Any]:
    """Offline metrics of a TinyVLA-style model on held-out data, batched under no_grad.

    Each batch runs one forward pass; the action-token loss is torch's cross-entropy
    of the bin logits against the target bins, the prediction is the arg-max bin, and
    per-split `OfflineMetrics` accumulate them (merged for the overall numbers, which
    merging makes exact).

    Args:
        model: callable ``model(images, text_ids, state) -> (action_logits, answer_logits)``
            with action_logits (B, H, D, n_bins); ``model.config`` gives horizon,
            action_dim, n_bins, state_dim, max_text_len and text_vocab_size.
        tokenizer: the model's action tokenizer.
        data: the held-out data (`builtin_heldout` or `load_heldout`).
        batch_size: samples per forward pass.
        text_vocab: the model's instruction vocabulary; the data's token ids are
            re-mapped word by word when it differs from the data's.
        n_traces: held-out episodes whose open-loop actions are kept for plotting.
        progress: show a tqdm bar on stderr.

    Returns:
        ``{"metrics": OfflineMetrics.compute() over every split (with "web"),
        "by_split": {split: per-dimension / per-chunk-step / dispersion detail},
        "traces": [...], "seconds": float}``.
    """
    import time

    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from vla_eval.envs.base import FAMILIES

    started = time.perf_counter()
    cfg = model.config
    batch_size = _positive(batch_size, "--batch-size")
    parts = [(s, _fit_to_model(ds, cfg, tokenizer, text_vocab)) for s, ds in data.demos]
    names = _dim_names(cfg.action_dim)
    per_split: dict[str, OfflineMetrics] = {}
    chosen = _trace_episodes(data.demos, n_traces)
    traces: dict[tuple[int, int], dict[str, list]] = {key: {} for key in chosen}
    total_batches = sum(-(-len(p["actions"]) // batch_size) for _, p in parts)
    if data.web is not None:
        total_batches += -(-len(data.web) // batch_size)
    bar = tqdm(
        total=total_batches,
        desc="offline",
        unit="batch",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for part, (split, p) in enumerate(parts):
                metrics = per_split.setdefault(split, OfflineMetrics(tokenizer, dim_names=names))
                task_names = np.asarray(FAMILIES, dtype=object)[p["task"]]
                target_bins = torch.from_numpy(p["bins"])
                rows_traced = np.isin(p["episode"], [e for (i, e) in chosen if i == part])
                for s in range(0, len(p["actions"]), batch_size):
                    sl = slice(s, s + batch_size)
                    out = model(
                        torch.from_numpy(p["images"][sl]),
                        torch.from_numpy(p["tokens"][sl]),
                        None if p["states"] is None else torch.from_numpy(p["states"][sl]),
                    )
                    logits = out[0]
                    tb = target_bins[sl]
                    nll = F.cross_entropy(
                        logits.flatten(0, 2), tb.flatten(), reduction="none"
                    ).view(tb.shape)
                    pred_bins = logits.argmax(-1).numpy()
                    metrics.update(
                        p["actions"][sl],
                        pred_tokens=pred_bins,
                        nll=nll.numpy(),
                        task=task_names[sl],
                        split=split,
                        mask=p["mask"][sl],
                    )
                    picked = np.flatnonzero(rows_traced[sl])
                    if picked.size:
                        _record_traces(
                            traces, part, p, s + picked, tokenizer.decode(pred_bins[picked, 0])
                        )
                    bar.update(1)
            web_metrics = OfflineMetrics(tokenizer, dim_names=names)
            if data.web is not None:
                _evaluate_web(model, data.web, web_metrics, batch_size, text_vocab, bar)
    finally:
        model.train(was_training)
        bar.close()

    total = OfflineMetrics(tokenizer, dim_names=names)
    for m in per_split.values():
        total.merge(m)
    total.merge(web_metrics)
    result = total.compute()
    by_split = {}
    for split, m in sorted(per_split.items()):
        detail = m.compute()
        by_split[split] = {k: detail[k] for k in ("per_dim", "per_chunk_step", "dispersion_ratio")}
    return {
        "metrics": result,
        "by_split": by_split,
        "traces": _finish_traces(traces, data.demos, names),
        "seconds": time.perf_counter() - started,
    }


def evaluate_checkpoints(
    paths: Sequence[str],
    *,
    data: str | None = None,
    splits: Sequence[str] | None = None,
    per_task: int = 20,
    seed: int = 0,
    web_examples: int = 500,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """`vla-eval offline CKPT...`: every checkpoint on the same held-out data.

    Every checkpoint is loaded and validated first (``torch.load(weights_only=True)``),
    so a bad file in the list stops the command before any evaluation runs.

    Args:
        paths: checkpoint files (several, e.g. a run's ``checkpoints/*.pt``, give a
            learning curve); a directory stands for its ``*.pt`` files, or for those in
            its ``checkpoints/`` folder (a run directory).
        data: a dataset ``.npz`` or directory (`load_heldout`); default: the built-in
            world's held-out demonstrations (`builtin_heldout`).
        splits: splits to evaluate (default: all).
        per_task: built-in data: episodes per task family and split.
        seed: built-in data: the data seed.
        web_examples: built-in data: held-out web VQA questions (0: none).
        batch_size: samples per forward pass.
        progress: tqdm bars on stderr.

    Returns:
        The ``vla-eval/offline/1`` result without provenance (the caller adds it).
    """
    from vla_eval.envs.base import SPLITS
    from vla_eval.trainer.checkpoint import load_policy

    if not paths:
        raise UsageError("give one or more checkpoint files")
    # Check the cheap arguments before loading anything.
    _positive(batch_size, "--batch-size")
    if data is None:
        _positive(per_task, "--per-task")
        if web_examples < 0:
            raise UsageError(f"--web-examples must be >= 0, got {web_examples}")
    policies = []
    for path in _expand_checkpoints(paths):
        model, tokenizer, ckpt = load_policy(path)
        recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), dict) else {}
        config = recipe.get("train_config") if isinstance(recipe.get("train_config"), dict) else {}
        if tokenizer.n_bins != model.config.n_bins:
            raise DataError(
                f"checkpoint {path}: its action tokenizer has {tokenizer.n_bins} bins but the "
                f"model predicts {model.config.n_bins}"
            )
        meta = {
            "checkpoint": str(path),
            "step": int(ckpt["step"]),
            "stage": ckpt["stage"],
            "run": config.get("name"),
        }
        policies.append((model, tokenizer, recipe.get("text_vocab"), meta))
        del ckpt  # the optimizer state is not needed for evaluation

    loaded = load_heldout(data, splits) if data is not None else None
    builtin_splits = list(SPLITS) if splits is None else list(splits)
    cache: dict[int, HeldoutData] = {}

    def data_for(horizon: int) -> HeldoutData:
        if loaded is not None:
            return loaded
        # Checkpoints of different runs may predict chunks of different lengths.
        if horizon not in cache:
            cache[horizon] = builtin_heldout(builtin_splits, per_task, horizon, seed, web_examples)
        return cache[horizon]

    results = []
    for model, tokenizer, vocab, meta in policies:
        held = data_for(model.config.horizon)
        evaluated = evaluate_model(
            model, tokenizer, held, batch_size=batch_size, text_vocab=vocab, progress=progress
        )
        results.append({**meta, **evaluated, "tokenizer": _tokenizer_info(tokenizer)})
    held = data_for(policies[-1][0].config.horizon)
    source = dict(held.source)
    source["samples"] = {s: sum(len(d) for n, d in held.demos if n == s) for s in source["splits"]}
    source["episodes"] = {
        s: sum(np.unique(d.episode).size for n, d in held.demos if n == s) for s in source["splits"]
    }
    seeds = {"data": source.get("seed"), "web": source.get("web_seed")}
    return {
        "schema": SCHEMA,
        "kind": "checkpoints",
        "data": source,
        "seeds": seeds,
        "results": results,
    }


def load_predictions(path: str | Any) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read a predictions ``.npz`` (DESIGN.md) without unpickling anything.

    Returns:
        (arrays by key, warnings). Arrays are validated for presence, dtype, shape and
        finiteness; every problem raises `DataError` naming the key.
    """
    from pathlib import Path
    from zipfile import BadZipFile

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"predictions file not found: {path}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, BadZipFile) as exc:
        raise DataError(f"{path} is not a readable .npz file ({_first_line(exc)})") from None
    if not hasattr(npz, "files"):
        raise DataError(f"{path} holds a single array; expected an .npz with named arrays")
    arrays: dict[str, np.ndarray] = {}
    with npz:
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise DataError(f"{path}: cannot read {key!r} ({_first_line(exc)})") from None
                raise DataError(
                    f"{path}: {key!r} is an object array (pickled Python objects), refused; "
                    "save numeric arrays, and task/split names as a string array"
                ) from None
            except (OSError, EOFError, BadZipFile) as exc:
                raise DataError(f"{path}: cannot read {key!r} ({_first_line(exc)})") from None
    warnings = [
        f"{path}: ignoring unknown key {k!r} (known: {', '.join(PREDICTION_KEYS)})"
        for k in sorted(set(arrays) - set(PREDICTION_KEYS))
    ]
    if "target_actions" not in arrays:
        raise DataError(f"{path} lacks 'target_actions' (the true actions, (N, D) or (N, H, D))")
    if "pred_actions" not in arrays and "pred_tokens" not in arrays:
        raise DataError(f"{path} lacks 'pred_actions' or 'pred_tokens' (one is required)")
    target = _numeric(arrays["target_actions"], "target_actions", path)
    if target.ndim not in (2, 3) or target.shape[0] == 0 or target.shape[-1] == 0:
        raise DataError(
            f"{path}: 'target_actions' must be (N, D) or (N, H, D) with N, D >= 1, got "
            f"shape {target.shape}"
        )
    out: dict[str, np.ndarray] = {"target_actions": target}
    n = target.shape[0]
    for key in ("pred_actions", "pred_tokens"):
        if key in arrays:
            a = _numeric(arrays[key], key, path)
            if a.shape != target.shape:
                raise DataError(
                    f"{path}: {key!r} has shape {a.shape}; it must match 'target_actions' "
                    f"{target.shape}"
                )
            out[key] = a
    if "pred_tokens" in out:
        tokens = out["pred_tokens"]
        if np.any(tokens != np.round(tokens)):
            raise DataError(f"{path}: 'pred_tokens' must hold integer bin indices")
        out["pred_tokens"] = tokens.astype(np.int64)
    if "logits" in arrays:
        logits = _numeric(arrays["logits"], "logits", path)
        if logits.shape[:-1] != target.shape or logits.ndim != target.ndim + 1:
            raise DataError(
                f"{path}: 'logits' has shape {logits.shape}; expected {target.shape} + (bins,)"
            )
        out["logits"] = logits
    for key in ("task", "split"):
        if key in arrays:
            labels = arrays[key]
            if labels.shape != (n,):
                raise DataError(
                    f"{path}: {key!r} must have one entry per sample ({n},), got {labels.shape}"
                )
            if labels.dtype.kind == "S":
                labels = labels.astype(str)
            if labels.dtype.kind not in "Uiub":
                raise DataError(f"{path}: {key!r} must hold strings or integers")
            out[key] = labels.astype(str)
    if "mask" in arrays:
        mask = arrays["mask"]
        h = target.shape[1] if target.ndim == 3 else 1
        if mask.shape not in ((n,), (n, h)):
            raise DataError(f"{path}: 'mask' must be ({n},) or ({n}, {h}), got {mask.shape}")
        if mask.dtype.kind != "b" and not np.all(np.isin(mask, (0, 1))):
            raise DataError(f"{path}: 'mask' must hold booleans (or 0/1)")
        out["mask"] = mask.astype(bool)
        if not out["mask"].any():
            raise DataError(f"{path}: 'mask' marks every entry as padding; nothing to score")
    if "dim_names" in arrays:
        names = arrays["dim_names"]
        d = target.shape[-1]
        if names.shape != (d,) or names.dtype.kind not in "US":
            raise DataError(f"{path}: 'dim_names' must be {d} strings, got {names.shape}")
        out["dim_names"] = names.astype(str)
    return out, warnings


def prediction_tokenizer(
    kind: str = "uniform",
    bins: int | None = None,
    low: float | None = None,
    high: float | None = None,
) -> ActionTokenizer:
    """The action tokenizer that scores a predictions file.

    ``"uniform"``: ``bins`` (default 256) equal cells over ``[low, high]`` (default
    [-1, 1]). ``"openvla"``: OpenVLA's tokenizer (`ActionTokenizer.openvla`): 256
    edges over [-1, 1] unless ``bins``/``low``/``high`` say otherwise.
    """
    if kind not in ("uniform", "openvla"):
        raise UsageError(f"--tokenizer must be 'uniform' or 'openvla', got {kind!r}")
    lo = -1.0 if low is None else float(low)
    hi = 1.0 if high is None else float(high)
    n = 256 if bins is None else bins
    return ActionTokenizer(n_bins=n, low=lo, high=hi, scheme=kind)  # type: ignore[arg-type]


def score_predictions(path: str | Any, tokenizer: ActionTokenizer) -> dict[str, Any]:
    """`vla-eval offline --predictions FILE.npz`: metrics of another model's predictions.

    Returns:
        The ``vla-eval/offline/1`` result without provenance, with ``warnings``.
    """
    arrays, warnings = load_predictions(path)
    target = arrays["target_actions"]
    if "pred_tokens" in arrays:
        tokens = arrays["pred_tokens"]
        if tokens.min() < 0 or tokens.max() >= tokenizer.n_bins:
            raise DataError(
                f"{path}: 'pred_tokens' range {int(tokens.min())}..{int(tokens.max())} is outside "
                f"0..{tokenizer.n_bins - 1}; pass --bins to match the model's bins (bin indices, "
                "not vocabulary ids)"
            )
    if "logits" in arrays and arrays["logits"].shape[-1] != tokenizer.n_bins:
        raise DataError(
            f"{path}: 'logits' have {arrays['logits'].shape[-1]} bins but the tokenizer has "
            f"{tokenizer.n_bins}; pass --bins {arrays['logits'].shape[-1]}"
        )
    outside = float(np.mean((target < tokenizer.low) | (target > tokenizer.high)))
    if outside > 0:
        warnings.append(
            f"{100 * outside:.1f}% of target_actions lie outside [{tokenizer.low:g}, "
            f"{tokenizer.high:g}] and fall into the end bins; normalise the actions or pass "
            "--low/--high"
        )
    d = target.shape[-1]
    names = arrays.get("dim_names")
    metrics = OfflineMetrics(tokenizer, dim_names=None if names is None else list(names))
    splits = arrays.get("split")
    groups = (
        [(None, slice(None))] if splits is None else [(s, splits == s) for s in np.unique(splits)]
    )
    by_split: dict[str, Any] = {}
    for split, rows in groups:
        m = OfflineMetrics(tokenizer, dim_names=metrics.dim_names)
        m.update(
            target[rows],
            pred_actions=arrays["pred_actions"][rows] if "pred_actions" in arrays else None,
            pred_tokens=arrays["pred_tokens"][rows] if "pred_tokens" in arrays else None,
            logits=arrays["logits"][rows] if "logits" in arrays else None,
            task=arrays["task"][rows] if "task" in arrays else None,
            split=split,
            mask=arrays["mask"][rows] if "mask" in arrays else None,
        )
        if split is not None:
            detail = m.compute()
            by_split[str(split)] = {
                k: detail[k] for k in ("per_dim", "per_chunk_step", "dispersion_ratio")
            }
        metrics.merge(m)
    result = {
        "source": str(path),
        "metrics": metrics.compute(),
        "by_split": by_split,
        "traces": [],
        "tokenizer": _tokenizer_info(tokenizer),
    }
    keys = sorted(k for k in arrays if k != "dim_names")
    return {
        "schema": SCHEMA,
        "kind": "predictions",
        "data": {
            "kind": "predictions",
            "path": str(path),
            "keys": keys,
            "samples": int(target.shape[0]),
            "action_dim": d,
        },
        "seeds": {},
        "results": [result],
        "warnings": warnings,
    }


# --- output -------------------------------------------------------------------------------------


def format_offline(result: Mapping[str, Any]) -> str:
    """Readable tables of an offline result (the last checkpoint in full, earlier ones in brief)."""
    lines: list[str] = []
    results = result["results"]
    if len(results) > 1:
        lines += _learning_table(results)
        lines.append("")
    last = results[-1]
    m = last["metrics"]
    if result["kind"] == "checkpoints":
        run = f", run {last['run']}" if last.get("run") else ""
        lines.append(
            f"checkpoint {last['checkpoint']} (step {last['step']}, stage {last['stage']}{run})"
        )
    else:
        lines.append(f"predictions {last['source']}")
    lines.append(_describe_data(result["data"], m, last["tokenizer"]))
    ks = m["within_k"]
    header = (
        f"{'':<16}{'count':>7}{'loss':>8}{'exact':>8}"
        + "".join(f"{'±' + str(k):>8}" for k in ks)
        + f"{'L1':>8}{'MSE':>9}"
    )

    def row(label: str, s: Mapping[str, Any], extra: str = "") -> str:
        cells = [f"{label:<16}{s['count']:>7}", _num(s["loss"], 8, 3), _pct(s["accuracy"])]
        cells += [_pct(s[f"within_{k}"]) for k in ks]
        cells += [_num(s["l1"], 8, 4), _num(s["mse"], 9, 5)]
        return "".join(cells) + extra

    lines += ["", header, row("overall", m["overall"])]
    lines += [row(f"  {s}", v) for s, v in m["per_split"].items()]
    if len(m["per_task_split"]) > 1:
        lines += ["", "per task and split"]
        lines += [row(f"  {e['task']}/{e['split']}", e) for e in m["per_task_split"]]
    lines += ["", "per action dimension (disp: dispersion ratio)", header + f"{'disp':>7}"]
    for name, s in m["per_dim"].items():
        lines.append(row(f"  {name}", s, _num(m["dispersion_ratio"][name], 7, 2)))
    if m["chunk"] > 1:
        lines += ["", "per chunk step"]
        lines += [row(f"  t+{j}", s) for j, s in enumerate(m["per_chunk_step"])]
    lines.append("")
    lines.append(_dispersion_note(m["dispersion_ratio"]))
    if "web" in m:
        w = m["web"]
        lines.append(
            f"web VQA (language retention): loss {w['loss']:.3f}, answer accuracy "
            f"{100 * w['accuracy']:.1f}% over {w['count']} questions"
        )
    return "\n".join(lines)


def write_offline(result: Mapping[str, Any], out_dir: str | Any) -> list[Any]:
    """Write ``offline.json`` and the PNG plots into ``out_dir``; return the paths written.

    Plots: ``dimension_accuracy.png`` (exact and within ±k per action dimension, per
    split), ``open_loop.png`` (predicted vs demonstrated actions over a few held-out
    episodes, checkpoints only) and, with several checkpoints, ``learning_curve.png``.
    """
    from pathlib import Path

    from vla_eval import plots
    from vla_eval.results import write_json

    out = Path(out_dir)
    written = [write_json(out / "offline.json", result)]
    last = result["results"][-1]
    m = last["metrics"]
    panels: dict[str, dict[str, list[float | None]]] = {}
    sources = last["by_split"] if len(last["by_split"]) > 1 else {"all": m}
    for split, detail in sources.items():
        per_dim = detail["per_dim"]
        panels[split] = {"exact": [v["accuracy"] for v in per_dim.values()]}
        for k in m["within_k"]:
            panels[split][f"within ±{k}"] = [v[f"within_{k}"] for v in per_dim.values()]
    title = _plot_title(result, last)
    held_out = result["kind"] == "checkpoints"
    what = "Held-out action-bin accuracy" if held_out else "Action-bin accuracy"
    written.append(
        plots.dimension_accuracy_plot(
            out / "dimension_accuracy.png",
            list(m["per_dim"]),
            panels,
            title=f"{what} per dimension — {title}",
        )
    )
    if last["traces"]:
        written.append(
            plots.action_traces_plot(
                out / "open_loop.png",
                last["traces"],
                TRACE_DIMS,
                title=f"Open-loop actions on held-out episodes — {title}",
            )
        )
    if len(result["results"]) > 1:
        ordered = sorted(result["results"], key=lambda r: r.get("step", 0))
        steps = [r.get("step", i) for i, r in enumerate(ordered)]
        series: dict[str, dict[str, list[float | None]]] = {
            "action-token loss": {},
            "exact bin accuracy": {},
            "L1 (action units)": {},
        }
        for s in ordered[-1]["metrics"]["per_split"]:
            for label, key in zip(series, ("loss", "accuracy", "l1"), strict=True):
                series[label][s] = [r["metrics"]["per_split"].get(s, {}).get(key) for r in ordered]
        if all("web" in r["metrics"] for r in ordered):
            series["web VQA answer accuracy (language retention)"] = {
                "web": [r["metrics"]["web"]["accuracy"] for r in ordered]
            }
        # The trainer checkpoints at every stage's end, so a stage starts after the last
        # checkpoint of the previous one: mark that step with the new stage's name.
        marks = [
            (float(prev["step"]), f"{r['stage']} →")
            for prev, r in zip([None, *ordered[:-1]], ordered, strict=True)
            if prev is not None and r.get("stage") != prev.get("stage")
        ]
        run = ordered[-1].get("run")
        written.append(
            plots.learning_curve_plot(
                out / "learning_curve.png",
                steps,
                series,
                title="Held-out metrics over training" + (f" — {run}" if run else ""),
                marks=marks,
            )
        )
    return written


# --- helpers for the evaluation path ----------------------------------------------------------


def _positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _expand_checkpoints(paths: Sequence[str]) -> list[str]:
    """Checkpoint files; a directory gives its ``*.pt`` (or ``checkpoints/*.pt``), sorted."""
    from pathlib import Path

    files: list[str] = []
    for p in paths:
        folder = Path(p)
        if not folder.is_dir():
            files.append(str(p))
            continue
        if (folder / "checkpoints").is_dir():
            folder = folder / "checkpoints"
        found = sorted(folder.glob("*.pt"))
        if not found:
            raise UsageError(f"{p} is a directory without checkpoint (*.pt) files")
        files += [str(f) for f in found]
    return files


def _dim_names(d: int) -> list[str] | None:
    from vla_eval.envs.tabletop import ACTION_NAMES

    return list(ACTION_NAMES) if d == len(ACTION_NAMES) else None


def _tokenizer_info(tok: ActionTokenizer) -> dict[str, Any]:
    state = tok.state_dict()
    state.pop("bin_edges")  # recomputable, and long
    return state


def _remap_text(
    tokens: np.ndarray, data_vocab: Sequence[str], model_vocab: Sequence[str] | None
) -> np.ndarray:
    """Instruction ids in the data's vocabulary -> ids in the model's (unknown words -> UNK)."""
    from vla_eval.envs.text import UNK

    if model_vocab is None or list(model_vocab) == list(data_vocab):
        return tokens
    index = {w: i for i, w in enumerate(model_vocab)}
    table = np.array([index.get(str(w), UNK) for w in data_vocab], dtype=np.int64)
    return table[tokens]


def _fit_text(tokens: np.ndarray, cfg: Any) -> np.ndarray:
    if tokens.shape[1] > cfg.max_text_len:
        if np.any(tokens[:, cfg.max_text_len :] != 0):
            raise DataError(
                f"instructions are longer than the model's max_text_len {cfg.max_text_len}"
            )
        tokens = tokens[:, : cfg.max_text_len]
    if tokens.size and tokens.max() >= cfg.text_vocab_size:
        raise DataError(
            f"instruction token ids reach {int(tokens.max())}, beyond the model's text "
            f"vocabulary of {cfg.text_vocab_size}"
        )
    return np.ascontiguousarray(tokens)


def _fit_to_model(
    ds: Any, cfg: Any, tokenizer: ActionTokenizer, text_vocab: Sequence[str] | None
) -> dict[str, Any]:
    """A demo dataset's arrays shaped for the model: chunk length, text ids, target bins."""
    h_data, d_data = ds.actions.shape[1:]
    if d_data != cfg.action_dim:
        raise DataError(
            f"the data has {d_data} action dimensions but the model predicts {cfg.action_dim}"
        )
    if h_data < cfg.horizon:
        raise DataError(
            f"the data's action chunks have {h_data} steps, fewer than the model's horizon "
            f"{cfg.horizon}"
        )
    if cfg.state_dim and ds.states.shape[1] != cfg.state_dim:
        raise DataError(
            f"the data's state has {ds.states.shape[1]} values but the model takes {cfg.state_dim}"
        )
    # Chunk t holds actions t..t+H-1, so the first H steps of a longer chunk are the H-chunk.
    actions = np.ascontiguousarray(ds.actions[:, : cfg.horizon], dtype=np.float64)
    tokens = _fit_text(_remap_text(ds.tokens, ds.vocab, text_vocab), cfg)
    return {
        "images": np.ascontiguousarray(ds.images),
        "tokens": tokens,
        "states": np.ascontiguousarray(ds.states, np.float32) if cfg.state_dim else None,
        "actions": actions,
        "bins": tokenizer.encode(actions),
        "mask": np.ascontiguousarray(ds.mask[:, : cfg.horizon]),
        "task": ds.task,
        "episode": ds.episode,
        "step": ds.step,
    }


def _evaluate_web(
    model: Any,
    web: Any,
    metrics: OfflineMetrics,
    batch_size: int,
    text_vocab: Sequence[str] | None,
    bar: Any,
) -> None:
    import torch

    from vla_eval.envs.text import QUESTION_TYPES

    cfg = model.config
    questions = _fit_text(_remap_text(web.questions, web.vocab, text_vocab), cfg)
    kinds = np.asarray(QUESTION_TYPES, dtype=object)[web.question_types]
    answers = web.answers
    if answers.size and answers.max() >= cfg.n_answers:
        raise DataError(
            f"web answers reach id {int(answers.max())}, beyond the model's {cfg.n_answers}"
        )
    for s in range(0, len(web), batch_size):
        sl = slice(s, s + batch_size)
        n = len(answers[sl])
        state = torch.zeros(n, cfg.state_dim) if cfg.state_dim else None
        out = model(torch.from_numpy(web.images[sl]), torch.from_numpy(questions[sl]), state)
        metrics.update_web(out[1], answers[sl], kind=kinds[sl])
        bar.update(1)


def _trace_episodes(demos: Sequence[tuple[str, Any]], n: int) -> list[tuple[int, int]]:
    """(part, episode) of up to n held-out episodes: one per task family, splits taking turns."""
    chosen: list[tuple[int, int]] = []
    if n <= 0 or not demos:
        return chosen
    families = sorted({int(t) for _, ds in demos for t in np.unique(ds.task)})
    for j, fam in enumerate(families):
        order = [(j + i) % len(demos) for i in range(len(demos))]
        for part in order:
            ds = demos[part][1]
            eps = ds.episode[ds.task == fam]
            if eps.size:
                chosen.append((part, int(eps[0])))
                break
        if len(chosen) == n:
            break
    return chosen


def _record_traces(
    traces: dict[tuple[int, int], dict[str, list]],
    part: int,
    p: Mapping[str, np.ndarray],
    rows: np.ndarray,
    first_pred: np.ndarray,
) -> None:
    for r, pred in zip(rows, first_pred, strict=True):
        t = traces[(part, int(p["episode"][r]))]
        t.setdefault("step", []).append(int(p["step"][r]))
        t.setdefault("true", []).append(p["actions"][r, 0].tolist())
        t.setdefault("pred", []).append(pred.tolist())


def _finish_traces(
    traces: Mapping[tuple[int, int], Mapping[str, list]],
    demos: Sequence[tuple[str, Any]],
    names: Sequence[str] | None,
) -> list[dict[str, Any]]:
    from vla_eval.envs.base import FAMILIES

    out = []
    for (part, episode), t in traces.items():
        if not t:
            continue
        split, ds = demos[part]
        order = np.argsort(t["step"])
        row = int(np.flatnonzero(ds.episode == episode)[0])
        out.append(
            {
                "task": FAMILIES[int(ds.task[row])],
                "split": split,
                "episode": episode,
                "instruction": str(ds.instructions[episode]),
                "dims": list(names) if names else [f"d{i}" for i in range(len(t["true"][0]))],
                "step": [t["step"][i] for i in order],
                "true": [t["true"][i] for i in order],
                "pred": [t["pred"][i] for i in order],
            }
        )
    return out


def _numeric(a: np.ndarray, key: str, path: Any) -> np.ndarray:
    if a.dtype.kind not in "fiub":
        raise DataError(f"{path}: {key!r} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise DataError(f"{path}: {key!r} contains NaN or infinite values")
    return a


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:120] or type(exc).__name__).rstrip(".")


def _pct(v: float | None, width: int = 8) -> str:
    return f"{'—':>{width}}" if v is None else f"{100 * v:>{width - 1}.1f}%"


def _num(v: float | None, width: int, digits: int) -> str:
    return f"{'—':>{width}}" if v is None else f"{v:>{width}.{digits}f}"


def _describe_data(data: Mapping[str, Any], m: Mapping[str, Any], tok: Mapping[str, Any]) -> str:
    binning = f"{tok['n_bins']} {tok['scheme']} bins over [{tok['low']:g}, {tok['high']:g}]"
    shape = f"chunks of {m['chunk']} steps x {m['action_dim']} dims"
    if data["kind"] == "predictions":
        return f"{data['samples']} samples, {shape}; {binning}"
    counts = ", ".join(
        f"{s} {data['samples'][s]} samples / {data['episodes'][s]} episodes" for s in data["splits"]
    )
    if data["kind"] == "built-in":
        where = (
            f"built-in world, {data['per_task']} episodes per task and split, seed {data['seed']}"
        )
    else:
        where = str(data["path"])
    web = f"; {data['web_examples']} web VQA questions" if data.get("web_examples") else ""
    return f"held-out data: {where}\n  {counts}; {shape}; {binning}{web}"


def _dispersion_note(ratios: Mapping[str, float | None]) -> str:
    known = {k: v for k, v in ratios.items() if v is not None}
    if not known:
        return "dispersion ratio std(pred)/std(target): undefined (constant targets)"
    low = [k for k, v in known.items() if v < 0.5]
    text = "dispersion ratio std(pred)/std(target): " + ", ".join(
        f"{k} {v:.2f}" for k, v in known.items()
    )
    if low:
        text += f" — below 0.5 on {', '.join(low)}: predictions barely vary (collapse signal)"
    return text


def _learning_table(results: Sequence[Mapping[str, Any]]) -> list[str]:
    splits = list(results[-1]["metrics"]["per_split"])
    head = f"{'step':>7} {'stage':<12}" + "".join(
        f"{s + ' loss':>13}{s + ' acc':>12}{s + ' L1':>11}" for s in splits
    )
    has_web = all("web" in r["metrics"] for r in results)
    head += f"{'web acc':>9}" if has_web else ""
    lines = ["learning curve (held-out)", head]
    for r in sorted(results, key=lambda r: r.get("step", 0)):
        ps = r["metrics"]["per_split"]
        cells = f"{r.get('step', ''):>7} {r.get('stage', '')!s:<12}"
        for s in splits:
            v = ps.get(s, {})
            cells += _num(v.get("loss"), 13, 3) + _pct(v.get("accuracy"), 12)
            cells += _num(v.get("l1"), 11, 4)
        if has_web:
            cells += _pct(r["metrics"]["web"]["accuracy"], 9)
        lines.append(cells)
    return lines


def _plot_title(result: Mapping[str, Any], last: Mapping[str, Any]) -> str:
    if result["kind"] == "checkpoints":
        run = f"{last['run']} " if last.get("run") else ""
        return f"{run}step {last['step']}"
    from pathlib import Path

    return Path(last["source"]).name
