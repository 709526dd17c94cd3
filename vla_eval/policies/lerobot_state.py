"""Per-environment episode state for LeRobot policies, and batching it back together.

A LeRobot policy keeps its episode state (action queue, observation history, ACT's
temporal ensembler) in plain attributes for one batch that starts and ends together.
`episode_copy` gives each environment a copy of the policy that shares the weights and
owns that state; `EnvState` adds the environment's own random stream. When several
environments' states have the same structure (queues of the same length, rows of the same
shapes), `merge` stacks them into one batch so one ``select_action`` call serves them all,
and `split` hands each its rows back; a call that draws random numbers is not batched (its
noise must come from each episode's own stream). torch is imported by the functions that
need it.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections import deque
from collections.abc import Hashable, Iterator
from typing import Any

import numpy as np


def state_keys(policy: Any) -> tuple[str, ...]:
    """The attributes holding a LeRobot policy's episode state: containers (deques, dicts,
    lists) and LeRobot's own helper objects; never modules, tensors or the config."""
    import torch

    internals = set(vars(torch.nn.Module()))
    keys = []
    for key, value in vars(policy).items():
        if key in internals or key == "config" or isinstance(value, torch.nn.Module | torch.Tensor):
            continue
        if isinstance(value, deque | dict | list) or type(value).__module__.startswith("lerobot"):
            keys.append(key)
    return tuple(keys)


def episode_copy(policy: Any, keys: tuple[str, ...]) -> Any:
    """A copy of ``policy`` sharing its weights and config, owning its own ``keys``."""
    clone = copy.copy(policy)
    for key in keys:
        clone.__dict__[key] = copy.deepcopy(policy.__dict__[key])
    return clone


def episode_seed(seed: int, obs: dict[str, Any], row: int) -> int:
    """The seed of an episode's random stream: sha256 of ``seed`` and row ``row`` of its first
    observation batch (every key but ``env_index``, in sorted order), first 8 bytes."""
    digest = hashlib.sha256(str(seed).encode())
    for key in sorted(k for k in obs if k != "env_index"):
        value = obs[key][row]
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        digest.update(key.encode() + b"\0")
        if hasattr(value, "shape"):
            digest.update(np.ascontiguousarray(value).tobytes())
        else:
            digest.update(repr(value).encode())
    return int.from_bytes(digest.digest()[:8], "little") & (2**63 - 1)


class EnvState:
    """One environment's view of the policy: its episode state and its random stream."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.rng: Any = None  # seeded at the episode's first step
        self.cuda_rng: Any = None

    def seed(self, torch: Any, device: Any, seed: int) -> None:
        self.rng = torch.Generator().manual_seed(seed).get_state()
        if device.type == "cuda":
            self.cuda_rng = torch.Generator(device=device).manual_seed(seed).get_state()

    @contextlib.contextmanager
    def active(self, torch: Any, device: Any) -> Iterator[None]:
        """Run with this environment's random stream as torch's global one, then save it."""
        cuda = device.type == "cuda"
        with torch.random.fork_rng(devices=[device] if cuda else []):
            torch.set_rng_state(self.rng)
            if cuda:
                torch.cuda.set_rng_state(self.cuda_rng, device)
            yield
            self.rng = torch.get_rng_state()
            if cuda:
                self.cuda_rng = torch.cuda.get_rng_state(device)


def signature(value: Any) -> Hashable | None:
    """The structure of one environment's state value, or None when it cannot be batched.

    Batchable: None, tensors with a batch axis of 1, and deques and dicts of those.
    """
    if value is None:
        return ("none",)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if len(value.shape) == 0 or value.shape[0] != 1:
            return None
        return ("tensor", tuple(value.shape[1:]), str(value.dtype), str(value.device))
    if isinstance(value, deque):
        items = tuple(signature(v) for v in value)
        return None if None in items else ("deque", value.maxlen, items)
    if isinstance(value, dict):
        items = tuple((k, signature(v)) for k, v in sorted(value.items()))
        return None if any(s is None for _, s in items) else ("dict", items)
    return None


def merge(values: list[Any]) -> Any:
    """Same-signature values of several environments as one batch (rows in that order)."""
    import torch

    first = values[0]
    if first is None:
        return None
    if isinstance(first, deque):
        return deque(
            (merge([v[j] for v in values]) for j in range(len(first))), maxlen=first.maxlen
        )
    if isinstance(first, dict):
        return {k: merge([v[k] for v in values]) for k in first}
    return torch.cat(values)


def split(value: Any, n: int) -> list[Any] | None:
    """The inverse of `merge`: each environment's part, or None if a value lost its batch axis."""
    if value is None:
        return [None] * n
    if isinstance(value, deque):
        items = [split(v, n) for v in value]
        if any(i is None for i in items):
            return None
        return [deque((i[j] for i in items), maxlen=value.maxlen) for j in range(n)]  # type: ignore[index]
    if isinstance(value, dict):
        parts = {k: split(v, n) for k, v in value.items()}
        if any(p is None for p in parts.values()):
            return None
        return [{k: p[j] for k, p in parts.items()} for j in range(n)]  # type: ignore[index]
    if hasattr(value, "shape") and len(value.shape) and value.shape[0] == n:
        return [value[j : j + 1] for j in range(n)]
    return None


def batched_select(
    torch: Any, clone: Any, keys: tuple[str, ...], states: list[EnvState], batch: dict[str, Any]
) -> Any:
    """``select_action`` for several environments at once, through ``clone``; their states
    advance as separate calls would advance them. None (states untouched) when the call drew
    random numbers or its state cannot be handed back row by row."""
    for key in keys:
        clone.__dict__[key] = merge([s.policy.__dict__[key] for s in states])
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
        before = torch.get_rng_state(), torch.cuda.get_rng_state() if cuda else None
        action = clone.select_action(batch)
        after = torch.get_rng_state(), torch.cuda.get_rng_state() if cuda else None
    if not torch.equal(before[0], after[0]) or (cuda and not torch.equal(before[1], after[1])):
        return None
    parts = {key: split(clone.__dict__[key], len(states)) for key in keys}
    if any(p is None for p in parts.values()):
        return None
    for j, state in enumerate(states):
        for key in keys:
            state.policy.__dict__[key] = parts[key][j]  # type: ignore[index]
    return action
