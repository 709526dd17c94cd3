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


def as_chunk(actions: Any, n: int, action_dim: int, who: str = "the policy") -> np.ndarray:
    """A policy's answer as float64 chunks (n, C, action_dim); a UsageError if it does not fit.

    Args:
        actions: what the policy returned for ``n`` environments.
        n: how many environments were asked.
        action_dim: the environment's action size.
        who: the policy, as error messages name it.
    """
    if hasattr(actions, "detach"):
        actions = actions.detach().cpu().numpy()
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(
            f"{who} returned a {type(actions).__name__} that is not an array of numbers; "
            f"the environment {_expected(n, action_dim)}"
        ) from None
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] != n or a.shape[2] != action_dim:
        raise UsageError(
            f"{who} returned actions of shape {tuple(np.shape(actions))}; the environment "
            f"{_expected(n, action_dim)} (N environments asked, D-dimensional actions)"
        )
    if not np.all(np.isfinite(a)):
        rows = np.flatnonzero(~np.isfinite(a).all(axis=(1, 2)))
        raise UsageError(
            f"{who} returned NaN or infinite actions (rows {rows[:5].tolist()} of {n})"
        )
    return a


def _expected(n: int, action_dim: int) -> str:
    return f"needs (N, D) = ({n}, {action_dim}) or (N, C, D) = ({n}, C, {action_dim})"
