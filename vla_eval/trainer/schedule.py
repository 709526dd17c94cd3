"""The learning-rate schedule of a stage: linear warm-up, then cosine decay to a floor.

`cosine_lr` is the schedule as a pure function of the step (RECIPE.md, section 2:
warm-up over the first 3% of a stage's steps, cosine decay after it); `build_scheduler`
wraps it in a ``LambdaLR``. Unlike the lecture notes' schedule, the LR is never 0
(warm-up starts from a small non-zero LR) and stages shorter than their warm-up do
not divide by zero. Imports torch only inside `build_scheduler`; it must not depend on
the model, the training loop or the data pipeline.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from vla_eval.errors import UsageError

if TYPE_CHECKING:
    import torch


def warmup_steps(total: int, warmup_frac: float = 0.03) -> int:
    """Warm-up length: ceil(warmup_frac * total), leaving at least one step at the peak.

    >>> warmup_steps(1000), warmup_steps(100), warmup_steps(1), warmup_steps(10, 0.0)
    (30, 3, 0, 0)
    """
    total = positive_int(total, "total steps")
    check_schedule(warmup_frac, 0.5)
    if warmup_frac == 0:
        return 0
    # round() first: 0.03 * 100 is 3.0000000000000004 in floating point.
    return min(math.ceil(round(warmup_frac * total, 9)), total - 1)


def cosine_lr(
    step: int,
    total: int,
    base_lr: float,
    warmup_frac: float = 0.03,
    min_lr_frac: float = 0.1,
) -> float:
    """Learning rate at optimizer step `step` of a stage of `total` steps.

    Linear warm-up over ``w = warmup_steps(total, warmup_frac)`` steps from
    ``base_lr / (w + 1)`` (never 0) to ``base_lr`` at step ``w``, then cosine decay to
    ``base_lr * min_lr_frac`` at the last step ``total - 1``. A stage too short for
    its warm-up gets a shorter one (one step at the peak at least), so nothing
    divides by zero. Steps past the end keep the final LR (schedulers are often
    stepped once more after the last update).

    Args:
        step: 0-based optimizer step within the stage.
        total: steps in the stage, >= 1.
        base_lr: peak learning rate, > 0.
        warmup_frac: fraction of steps in warm-up, in [0, 1).
        min_lr_frac: final LR / peak LR, in (0, 1].

    >>> [round(cosine_lr(s, 5, 1.0, warmup_frac=0.4, min_lr_frac=0.1), 4) for s in range(5)]
    [0.3333, 0.6667, 1.0, 0.55, 0.1]
    """
    total = positive_int(total, "total steps")
    if not (math.isfinite(base_lr) and base_lr > 0):
        raise UsageError(f"base learning rate must be a positive number, got {base_lr}")
    check_schedule(warmup_frac, min_lr_frac)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UsageError(f"step must be an integer >= 0, got {step!r}")
    s = min(step, total - 1)
    w = warmup_steps(total, warmup_frac)
    if s < w:
        return base_lr * (s + 1) / (w + 1)
    decay = max(1, total - 1 - w)
    progress = (s - w) / decay
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_frac + (1.0 - min_lr_frac) * cosine)


class CosineMultiplier:
    """`cosine_lr` as a LambdaLR multiplier; a class (not a lambda) so its state saves plainly."""

    def __init__(self, total: int, warmup_frac: float = 0.03, min_lr_frac: float = 0.1) -> None:
        self.total = positive_int(total, "total steps")
        check_schedule(warmup_frac, min_lr_frac)
        self.warmup_frac = float(warmup_frac)
        self.min_lr_frac = float(min_lr_frac)

    def __call__(self, step: int) -> float:
        return cosine_lr(int(step), self.total, 1.0, self.warmup_frac, self.min_lr_frac)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total: int,
    warmup_frac: float = 0.03,
    min_lr_frac: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR following `cosine_lr`; step it once after every optimizer step."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, CosineMultiplier(total, warmup_frac, min_lr_frac)
    )


def check_schedule(warmup_frac: float, min_lr_frac: float) -> None:
    """Raise UsageError unless 0 <= warmup_frac < 1 and 0 < min_lr_frac <= 1."""
    if not (0 <= warmup_frac < 1):
        raise UsageError(f"warmup_frac must lie in [0, 1), got {warmup_frac}")
    if not (0 < min_lr_frac <= 1):
        raise UsageError(f"min_lr_frac must lie in (0, 1] (the LR is never 0), got {min_lr_frac}")


def positive_int(v: Any, name: str) -> int:
    """`v` if it is an int >= 1 (not a bool), else UsageError naming it."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {v!r}")
    return v
