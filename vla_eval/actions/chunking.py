"""Action chunks: an episode's (T, D) actions -> the (T, H, D) targets of a chunked policy.

`chunk_actions` (one episode), `chunk_episodes` (many stored back to back, never
crossing an episode) and `execute_chunk` (the open-loop prefix a policy executes
before re-planning). numpy only; it must not import torch.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from vla_eval.actions.tokenizer import as_actions
from vla_eval.errors import UsageError


def chunk_actions(
    actions: Any, horizon: int, pad: Literal["repeat", "zero"] = "repeat"
) -> tuple[np.ndarray, np.ndarray]:
    """Action-chunk targets for every step of one episode.

    Chunk ``t`` holds actions ``t .. t + horizon - 1``. Past the episode's end the
    chunk is padded (by repeating the last action, or with zeros) and the padding is
    marked invalid, so a loss can ignore it.

    Args:
        actions: (T, D) actions of one episode.
        horizon: chunk length H >= 1.
        pad: ``"repeat"`` the final action or fill with ``"zero"``.

    Returns:
        chunks (T, H, D) and valid (T, H) bool.

    >>> chunks, valid = chunk_actions([[0.0], [1.0], [2.0]], horizon=2)
    >>> chunks[..., 0].tolist(), valid.tolist()
    ([[0.0, 1.0], [1.0, 2.0], [2.0, 2.0]], [[True, True], [True, True], [True, False]])
    """
    a = as_actions(actions)
    if a.ndim != 2:
        raise UsageError(f"chunk_actions takes one episode's (T, D) actions, got shape {a.shape}")
    h = _positive_int(horizon, "horizon")
    if pad not in ("repeat", "zero"):
        raise UsageError(f"pad must be 'repeat' or 'zero', got {pad!r}")
    steps = a.shape[0]
    idx = np.arange(steps)[:, None] + np.arange(h)[None, :]
    valid = idx < steps
    if steps == 0:
        return np.zeros((0, h, a.shape[1])), valid
    chunks = a[np.minimum(idx, steps - 1)]
    if pad == "zero":
        chunks = np.where(valid[..., None], chunks, 0.0)
    return chunks, valid


def chunk_episodes(
    actions: Any, episode_ids: Any, horizon: int, pad: Literal["repeat", "zero"] = "repeat"
) -> tuple[np.ndarray, np.ndarray]:
    """`chunk_actions` over many episodes stored back to back, without crossing episodes.

    Args:
        actions: (N, D) actions of all steps, each episode's steps contiguous and in order.
        episode_ids: (N,) episode id of every step.
        horizon: chunk length H.
        pad: as in `chunk_actions`.

    Returns:
        chunks (N, H, D) and valid (N, H) bool, aligned with the input steps.
    """
    a = as_actions(actions)
    ids = np.asarray(episode_ids)
    if a.ndim != 2 or ids.shape != (a.shape[0],):
        raise UsageError(f"need (N, D) actions and (N,) episode ids, got {a.shape} and {ids.shape}")
    h = _positive_int(horizon, "horizon")
    n = a.shape[0]
    if n == 0:
        return np.zeros((0, h, a.shape[1])), np.zeros((0, h), bool)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if np.unique(ids[starts]).size != starts.size:
        raise UsageError("each episode's steps must be contiguous (an episode id reappears later)")
    ends = np.r_[starts[1:], n]  # one past each episode's last step
    last = np.repeat(ends - 1, ends - starts)  # per step: index of its episode's last step
    idx = np.arange(n)[:, None] + np.arange(h)[None, :]
    valid = idx <= last[:, None]
    chunks = a[np.minimum(idx, last[:, None])]
    if pad == "zero":
        chunks = np.where(valid[..., None], chunks, 0.0)
    return chunks, valid


def execute_chunk(chunks: Any, steps: int) -> np.ndarray:
    """The actions a policy executes open-loop: the first `steps` of each chunk.

    Args:
        chunks: (..., H, D) predicted chunks.
        steps: how many actions of each chunk are executed before re-planning, 1..H.

    Returns:
        (..., steps, D) array.
    """
    c = as_actions(chunks)
    if c.ndim < 2:
        raise UsageError(f"chunks need shape (..., H, D), got {c.shape}")
    k = _positive_int(steps, "steps")
    if k > c.shape[-2]:
        raise UsageError(f"cannot execute {k} steps of a chunk of {c.shape[-2]}")
    return c[..., :k, :]


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {v!r}")
    return int(v)
