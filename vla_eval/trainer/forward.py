"""The one forward-evaluation loop for TinyVLA-style models, batched under ``torch.no_grad``.

A model here is a callable ``model(images, text_ids, state) -> (action_logits,
answer_logits)`` with action_logits (B, H, D, n_bins) and a ``config`` giving
``state_dim``. Each batch runs one forward pass; the action-token loss is torch's
cross-entropy of the bin logits against the target bins, the prediction is the arg-max
bin, and per-split `OfflineMetrics` accumulate them. The trainer's periodic held-out
evaluation and `vla-eval offline` on checkpoints both run this loop. It imports torch
and `vla_eval.offline.metrics` only: no other evaluation module, no world.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vla_eval.actions import ActionTokenizer
from vla_eval.offline.metrics import OfflineMetrics

#: ``on_batch(part, start, pred_bins)``: after each demonstration batch (part index, first
#: row, predicted bins (B, H, D)); after each web batch ``part`` is -1 and ``pred_bins`` None.
BatchHook = Callable[[int, int, "np.ndarray | None"], None]


def forward_metrics(
    model: Any,
    tokenizer: ActionTokenizer,
    parts: Sequence[tuple[str, Mapping[str, Any]]],
    web: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 256,
    dim_names: Sequence[str] | None = None,
    on_batch: BatchHook | None = None,
) -> tuple[dict[str, OfflineMetrics], OfflineMetrics]:
    """Offline metrics of a model on held-out demonstrations (and web VQA questions).

    Args:
        model: see the module docstring; put in eval mode for the loop, then restored.
        tokenizer: the model's action tokenizer.
        parts: (split, arrays) with ``images`` (N, S, S, 3) uint8, ``tokens`` (N, L)
            int64 instruction ids, ``states`` (N, state_dim) or None, ``actions``
            (N, H, D) target chunks, ``mask`` (N, H) and ``task`` (N,) task names;
            optionally ``bins``, the target bins (default: ``tokenizer.encode(actions)``).
            Parts with the same split accumulate into one `OfflineMetrics`.
        web: ``images``, ``questions`` (M, L) and ``answers`` (M,), optionally ``kinds``
            (M,) question kinds; None: no language metrics.
        batch_size: samples per forward pass.
        dim_names: action dimension names for the metrics.
        on_batch: see `BatchHook` (progress bars, open-loop traces).

    Returns:
        (`OfflineMetrics` per split, `OfflineMetrics` holding only the web answers).
    """
    per_split: dict[str, OfflineMetrics] = {}
    web_metrics = OfflineMetrics(tokenizer, dim_names=dim_names)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for part, (split, p) in enumerate(parts):
                metrics = per_split.setdefault(
                    split, OfflineMetrics(tokenizer, dim_names=dim_names)
                )
                _demo_batches(model, tokenizer, p, split, metrics, batch_size, on_batch, part)
            if web is not None:
                _web_batches(model, web, web_metrics, batch_size, on_batch)
    finally:
        model.train(was_training)
    return per_split, web_metrics


def merged(
    per_split: Mapping[str, OfflineMetrics], web: OfflineMetrics | None = None
) -> OfflineMetrics:
    """One `OfflineMetrics` holding every split (and the web answers): exact, by merging."""
    first = next(iter(per_split.values()), web)
    if first is None:
        raise ValueError("nothing to merge")
    total = OfflineMetrics(first.tokenizer, first.within, first.dim_names)
    for m in per_split.values():
        total.merge(m)
    if web is not None:
        total.merge(web)
    return total


def _demo_batches(
    model: Any,
    tokenizer: ActionTokenizer,
    p: Mapping[str, Any],
    split: str,
    metrics: OfflineMetrics,
    batch_size: int,
    on_batch: BatchHook | None,
    part: int,
) -> None:
    bins = p.get("bins")
    target_bins = torch.from_numpy(tokenizer.encode(p["actions"]) if bins is None else bins)
    task = np.asarray(p["task"], dtype=object)
    states = p["states"]
    for s in range(0, len(p["actions"]), batch_size):
        sl = slice(s, s + batch_size)
        out = model(
            torch.from_numpy(p["images"][sl]),
            torch.from_numpy(p["tokens"][sl]),
            None if states is None else torch.from_numpy(states[sl]),
        )
        logits = out[0]
        tb = target_bins[sl]
        nll = F.cross_entropy(logits.flatten(0, 2), tb.flatten(), reduction="none").view(tb.shape)
        pred_bins = logits.argmax(-1).numpy()
        metrics.update(
            p["actions"][sl],
            pred_tokens=pred_bins,
            nll=nll.numpy(),
            task=task[sl],
            split=split,
            mask=p["mask"][sl],
        )
        if on_batch is not None:
            on_batch(part, s, pred_bins)


def _web_batches(
    model: Any,
    web: Mapping[str, Any],
    metrics: OfflineMetrics,
    batch_size: int,
    on_batch: BatchHook | None,
) -> None:
    state_dim = model.config.state_dim
    answers = web["answers"]
    kinds = web.get("kinds")
    for s in range(0, len(answers), batch_size):
        sl = slice(s, s + batch_size)
        n = len(answers[sl])
        state = torch.zeros(n, state_dim) if state_dim else None
        out = model(
            torch.from_numpy(web["images"][sl]), torch.from_numpy(web["questions"][sl]), state
        )
        metrics.update_web(out[1], answers[sl], kind=None if kinds is None else kinds[sl])
        if on_batch is not None:
            on_batch(-1, s, None)
