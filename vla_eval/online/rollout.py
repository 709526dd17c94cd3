"""One batch of episodes rolled out to the end: the step loop of online evaluation.

The batch's environments are reset together and stepped together, with one batched
policy call per step for the environments that need a new action. A policy that
raises stops the batch with a `PolicyError` (a `UsageError`: one line on the command
line) naming the policy and the exception; the caller has already written every
episode that finished. numpy, `envs.base` and `policies.registry` only; torch, if any,
enters through the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.online.chunks import ChunkExecutor, as_chunk
from vla_eval.online.config import OnlineConfig
from vla_eval.online.work import Work
from vla_eval.policies.registry import describe_error


class PolicyError(UsageError):
    """The policy raised during a run (its exception is the ``__cause__``)."""


def _call(name: str, what: str, method: Callable[..., Any], arg: Any, step: int = 0) -> Any:
    """``method(arg)``, its exception (other than a UsageError) told as a `PolicyError`."""
    try:
        return method(arg)
    except UsageError:
        raise
    except Exception as exc:  # the policy's own failure: stop the run, naming it
        raise PolicyError(
            f"policy {name} raised in {what} at step {step}: {describe_error(exc)} (episodes already "
            "recorded are kept; fix the policy and resume the run)"
        ) from exc


def rollout_batch(
    env: Env,
    policy: Callable[[dict[str, Any]], Any],
    batch: Sequence[Work],
    config: OnlineConfig,
) -> Iterable[tuple[Work, dict[str, Any]]]:
    """Run one batch of episodes to the end; yields (work, result) as each finishes.

    The result has ``success``, ``steps``, ``return``, ``instruction`` (when the
    environment gives one) and, if configured, ``actions``.
    """
    n = len(batch)
    obs = env.reset([w.seed for w in batch], [w.task for w in batch])
    instructions = obs.get("instruction")
    name = config.policy_name
    reset = getattr(policy, "reset", None)
    if reset is not None:
        _call(name, "reset()", reset, np.arange(n))
    executor = ChunkExecutor(n, config)
    limit = np.array(
        [config.max_steps or getattr(w.task.spec, "max_steps", None) or 10**9 for w in batch]
    )
    done = np.zeros(n, bool)
    success = np.zeros(n, bool)
    returns = np.zeros(n)
    steps = np.zeros(n, np.int64)
    actions_log: list[list[list[float]]] = [[] for _ in range(n)]
    t = 0
    while not done.all():
        ask = executor.needs_query() & ~done
        if ask.any():
            rows = np.flatnonzero(ask)
            sub = {
                k: (v[rows] if hasattr(v, "shape") else [v[i] for i in rows])
                for k, v in obs.items()
            }
            sub["env_index"] = rows
            answer = _call(name, "its call", policy, sub, t)
            chunk = as_chunk(answer, len(rows), env.action_dim, f"policy {name}")
            executor.push(rows, chunk, t)
        action = executor.next(t)
        action = np.where(done[:, None], 0.0, action)
        obs, reward, env_done, info = env.step(action)
        live = ~done
        returns[live] += np.asarray(reward, dtype=np.float64)[live]
        steps[live] += 1
        success |= np.asarray(info["success"], bool) & live
        if config.record_actions:
            for i in np.flatnonzero(live):
                actions_log[i].append([round(float(x), 6) for x in action[i]])
        finished = live & (np.asarray(env_done, bool) | (steps >= limit))
        for i in np.flatnonzero(finished):
            result = {
                "success": bool(success[i]),
                "steps": int(steps[i]),
                "return": float(returns[i]),
            }
            if instructions is not None:
                result["instruction"] = str(instructions[i])
            if config.record_actions:
                result["actions"] = actions_log[i]
            yield batch[i], result
        done |= finished
        t += 1
