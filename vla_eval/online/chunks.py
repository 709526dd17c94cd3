"""Turning a policy's answers into one action per environment per step.

A policy returns ``(N, D)`` actions or an action chunk ``(N, C, D)``; `as_chunk`
checks and normalises the answer, `ChunkExecutor` executes chunks open loop or with
temporal ensembling. numpy only (a torch tensor is converted through its own
``detach().cpu().numpy()``, without importing torch).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.online.config import OnlineConfig


class ChunkExecutor:
    """Turns a policy's action chunks into one action per env per step."""

    def __init__(self, n: int, config: OnlineConfig) -> None:
        self.n = n
        self.config = config
        self.queue: np.ndarray | None = None  # open loop: (n, C, D) remaining actions
        self.left = np.zeros(n, np.int64)  # open loop: actions left in each env's chunk
        self.pos = np.zeros(n, np.int64)  # open loop: index of the next action in each chunk
        self.history: list[tuple[int, np.ndarray]] = []  # ensemble: (start step, (n, C, D))

    def needs_query(self) -> np.ndarray:
        if self.config.chunk_mode == "ensemble":
            return np.ones(self.n, bool)
        return self.left == 0

    def push(self, rows: np.ndarray, chunk: np.ndarray, t: int) -> None:
        c = chunk.shape[1]
        if self.config.chunk_mode == "ensemble":
            full = np.full((self.n, c, chunk.shape[2]), np.nan)
            full[rows] = chunk
            self.history.append((t, full))
            self.history = [(s, h) for s, h in self.history if s + h.shape[1] > t]
            return
        if self.queue is None:
            self.queue = np.zeros((self.n, c, chunk.shape[2]))
        execute = min(self.config.execute or c, c)
        self.queue[rows, :execute] = chunk[:, :execute]
        self.pos[rows] = 0
        self.left[rows] = execute

    def next(self, t: int) -> np.ndarray:
        if self.config.chunk_mode == "ensemble":
            m = self.config.ensemble_decay
            num = 0.0
            den = 0.0
            for age, (start, h) in enumerate(self.history):  # oldest first: age 0
                preds = h[:, t - start]
                w = math.exp(-m * age)
                ok = ~np.isnan(preds[:, 0])
                num = num + np.where(ok[:, None], w * np.nan_to_num(preds), 0.0)
                den = den + np.where(ok, w, 0.0)
            return num / np.maximum(den, 1e-12)[:, None]
        rows = np.arange(self.n)
        queue = self.queue
        assert queue is not None  # a query always precedes the first action
        action = queue[rows, np.minimum(self.pos, queue.shape[1] - 1)]
        moving = self.left > 0  # finished episodes are no longer asked; they stay put
        self.pos = self.pos + moving
        self.left = self.left - moving
        return action


def as_chunk(actions: Any, n: int, action_dim: int) -> np.ndarray:
    """A policy's answer as float64 chunks (n, C, action_dim); a UsageError if it does not fit."""
    if hasattr(actions, "detach"):
        actions = actions.detach().cpu().numpy()
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] != n or a.shape[2] != action_dim:
        raise UsageError(
            f"the policy returned actions of shape {tuple(np.shape(actions))}; the environment "
            f"needs ({n}, {action_dim}) or ({n}, chunk, {action_dim})"
        )
    if not np.all(np.isfinite(a)):
        raise UsageError("the policy returned NaN or infinite actions")
    return a
