"""The training losses: action-bin cross-entropy (plus an ordinal term) and web-VQA answers.

`action_loss` is the robot loss the trainer optimises, `web_loss` the cross-entropy of
web VQA answers (rows labelled `IGNORE_INDEX` do not count) and `per_task_losses` the
per-example action loss grouped by task that the task-imbalance detector reads.
Depends on torch and the model's constants; it must not depend on the training loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vla_eval.envs.base import FAMILIES
from vla_eval.errors import UsageError
from vla_eval.trainer.model import IGNORE_INDEX


def action_loss(
    logits: torch.Tensor,
    target_bins: torch.Tensor,
    mask: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    regression_weight: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy over action bins, averaged over valid entries (plus an optional regression term).

    Cross-entropy treats bins as unordered classes, so a prediction one bin off is
    as wrong as one on the other side of the range, and a small model learns which
    way to move only slowly. ``regression_weight`` > 0 adds the squared error
    between the predicted distribution's expected bin and the target bin, in
    action units for bins over [-1, 1] (``(E[bin] - bin) * 2 / n_bins``), which
    gives every logit an ordinal gradient, as the MSE term of distributional
    regression losses does. Decoding still takes the most likely bin.

    Args:
        logits: (B, H, D, n_bins).
        target_bins: (B, H, D) int64 bin indices.
        mask: (B, H) or (B, H, D) bool, False for padding past an episode's end.
        weights: (B,) per-example weights (e.g. per-task loss weights); the loss is
            ``sum(w * m * ce) / sum(w * m)``.
        regression_weight: weight of the expected-bin squared error (0: plain
            cross-entropy), averaged with the same mask and weights.

    Returns:
        Scalar loss; 0 (with a gradient path) if nothing is valid.
    """
    if logits.ndim != 4 or tuple(target_bins.shape) != tuple(logits.shape[:3]):
        raise UsageError(
            f"action logits (B, H, D, n_bins) {tuple(logits.shape)} do not match targets "
            f"(B, H, D) {tuple(target_bins.shape)}"
        )
    ce = F.cross_entropy(logits.flatten(0, 2), target_bins.flatten(), reduction="none")
    ce = ce.view(target_bins.shape)
    w = torch.ones_like(ce)
    if mask is not None:
        m = mask.to(ce.dtype)
        w = w * (m.unsqueeze(-1) if m.ndim == 2 else m)
    if weights is not None:
        w = w * weights.to(ce.dtype).view(-1, 1, 1)
    per_entry = ce
    if regression_weight:
        n_bins = logits.shape[-1]
        index = torch.arange(n_bins, dtype=logits.dtype, device=logits.device)
        expected = (logits.softmax(-1) * index).sum(-1)
        error = (expected - target_bins.to(logits.dtype)) * (2.0 / n_bins)
        per_entry = ce + regression_weight * error.square()
    total = w.sum()
    return (per_entry * w).sum() / total.clamp_min(torch.finfo(ce.dtype).tiny)


def web_loss(
    answer_logits: torch.Tensor, answers: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of web-VQA answers; rows labelled `IGNORE_INDEX` (-100) do not count.

    Args:
        answer_logits: (B, n_answers).
        answers: (B,) int64 answer ids or -100.
        weights: optional (B,) per-example weights.

    Returns:
        Scalar loss; 0 if no row has an answer.
    """
    valid = answers != IGNORE_INDEX
    ce = F.cross_entropy(answer_logits, answers.clamp_min(0), reduction="none")
    w = valid.to(ce.dtype)
    if weights is not None:
        w = w * weights.to(ce.dtype)
    return (ce * w).sum() / w.sum().clamp_min(torch.finfo(ce.dtype).tiny)


def per_task_losses(logits: torch.Tensor, batch: dict, out: dict[str, list[float]]) -> None:
    """Per-example action loss grouped by task name (for task-imbalance detection)."""
    ce = F.cross_entropy(logits.flatten(0, 2), batch["bins"].flatten(), reduction="none")
    ce = ce.view(batch["bins"].shape)
    m = batch["mask"].unsqueeze(-1).to(ce.dtype).expand_as(ce)
    per_example = (ce * m).sum((1, 2)) / m.sum((1, 2)).clamp(min=1)
    for t, v in zip(batch["task"].tolist(), per_example.tolist(), strict=True):
        out.setdefault(FAMILIES[t], []).append(v)
