"""What an online evaluation runs and how: the torch-free `OnlineConfig`.

Reading or building a config imports nothing but the standard library and the
package's errors, so a protocol file can carry one without loading numpy or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vla_eval.errors import UsageError

SCHEMA = "vla-eval/online/1"

ChunkMode = Literal["open-loop", "ensemble"]


@dataclass(frozen=True)
class OnlineConfig:
    """What to roll out and how.

    Attributes:
        trials: episodes per (task, split); seeds 0..trials-1.
        splits: which splits to evaluate.
        tasks: task names to evaluate (None: all of the environment's).
        max_steps: step limit per episode (None: the environment's own limit).
        batch_size: episodes stepped together.
        chunk_mode: how an action chunk (N, C, D) is executed: ``open-loop`` runs
            `execute` actions of each chunk before asking again; ``ensemble`` asks
            every step and averages all predictions for the current step with
            weights exp(-ensemble_decay * age), oldest first (ACT's temporal
            ensembling, Zhao et al. 2023).
        execute: actions executed per chunk in open-loop mode (None: the whole chunk).
        ensemble_decay: the m of the ensembling weights.
        record_actions: write each episode's executed actions (for jitter diagnosis).
        policy_name: written into every record as ``policy``.
    """

    trials: int = 50
    splits: tuple[str, ...] = ("seen", "unseen")
    tasks: tuple[str, ...] | None = None
    max_steps: int | None = None
    batch_size: int = 64
    chunk_mode: ChunkMode = "open-loop"
    execute: int | None = None
    ensemble_decay: float = 0.01
    record_actions: bool = False
    policy_name: str = "policy"

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {self.trials}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.chunk_mode not in ("open-loop", "ensemble"):
            raise UsageError(f"unknown chunk mode {self.chunk_mode!r}; use open-loop or ensemble")
        if self.execute is not None and self.execute < 1:
            raise UsageError(f"--execute must be at least 1, got {self.execute}")
        if not self.splits:
            raise UsageError("no splits to evaluate")
