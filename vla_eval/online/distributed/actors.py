"""The two kinds of Ray actor of a distributed online run: environment workers and the policy.

An `EnvWorker` builds its environment once and rolls out whole batches of the run's
plan, yielding each episode's result as it finishes (the driver streams them into the
one episodes file). A `PolicyServer` holds the policy and answers the workers'
observation batches; requests that arrive while it is busy are merged into one call,
so one model serves every worker with batched inference. Policies that read the
simulator's privileged state (the scripted experts) cannot live apart from it: they
are built inside each worker instead. Neither class imports ray at module level (the
driver wraps them with ``ray.remote``); numpy and the online package only.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.online.config import OnlineConfig
from vla_eval.online.resume import EpisodeKey
from vla_eval.online.rollout import rollout_batch
from vla_eval.online.work import Order, plan

#: An environment: (name, options) for `vla_eval.envs.factory.make_env`, or a
#: picklable callable that builds one.
EnvSpec = tuple[str, dict[str, Any]] | Callable[[], Env]
#: A policy: (spec, args) for `vla_eval.policies.factory.make_policy`, or a picklable
#: callable ``env -> policy`` (a `Policy` or a `NamedPolicy`).
PolicySpec = tuple[str, dict[str, Any]] | Callable[[Env], Any]


class PolicyLost(UsageError):
    """The policy actor of a stateful policy restarted during a batch: its memory is gone.

    A UsageError so that the rollout loop passes it on unchanged (it reports any other
    exception of a policy as the policy's failure); the driver re-runs the batch."""


@dataclass(frozen=True)
class PolicyInfo:
    """What the driver needs to know of a policy built in an actor.

    Attributes:
        policy_id: identifies the policy in the run fingerprint (None: the caller's).
        stateful: the policy has ``reset`` (memory across steps), so each worker needs
            its own copy and requests are never merged across workers.
    """

    policy_id: str | None
    stateful: bool


def build_env(spec: EnvSpec) -> Env:
    """The environment a spec names (see `EnvSpec`)."""
    if callable(spec):
        return spec()
    from vla_eval.envs.factory import make_env

    name, options = spec
    return make_env(name, **options)


def build_policy(spec: PolicySpec, env: Env, env_spec: EnvSpec) -> tuple[Any, PolicyInfo]:
    """The policy a spec names, acting in `env`, and what the driver needs to know of it."""
    from vla_eval.policies.factory import NamedPolicy, make_policy

    if callable(spec):
        made = spec(env)
    else:
        name, args = spec
        env_name = None if callable(env_spec) else env_spec[0]
        made = make_policy(name, env, env_name=env_name, **args)
    policy_id = None
    if isinstance(made, NamedPolicy):
        made, policy_id = made.policy, made.policy_id
    return made, PolicyInfo(policy_id, hasattr(made, "reset"))


def policy_needs_env(spec: PolicySpec) -> bool:
    """Whether a policy reads its environment's privileged state (the scripted expert)."""
    return not callable(spec) and spec[0] == "expert"


def merge_observations(batches: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Observation batches stacked along the batch axis (arrays) or concatenated (lists)."""
    merged: dict[str, Any] = {}
    for key, first in batches[0].items():
        parts = [b[key] for b in batches]
        merged[key] = (
            np.concatenate(parts) if hasattr(first, "shape") else [x for p in parts for x in p]
        )
    return merged


def as_numpy(actions: Any) -> np.ndarray:
    """A policy's actions as a numpy array (a torch tensor on any device, or array-like)."""
    if hasattr(actions, "detach"):
        actions = actions.detach().cpu().numpy()
    return np.asarray(actions)


class Failed:
    """Holds an actor's set-up error, raised at its first call (so the driver sees it whole)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def check(self) -> None:
        raise self.exc


class PolicyServer:
    """The policy in its own actor: batched inference for every worker (run as an async actor).

    Args:
        env_spec: the environment the policy acts in (built here once, for the checks a
            policy makes against it, e.g. its action size).
        policy_spec: the policy.
    """

    def __init__(self, env_spec: EnvSpec, policy_spec: PolicySpec) -> None:
        self.failed: Failed | None = None
        try:
            self.policy, self.info = build_policy(policy_spec, build_env(env_spec), env_spec)
        except Exception as exc:  # reported at the first call, with its own type and message
            self.failed = Failed(exc)
        self.pid = os.getpid()
        self._pending: list[tuple[dict[str, Any], asyncio.Future[np.ndarray]]] = []
        self._draining = False
        self._drainer: asyncio.Task[None] | None = None
        # One thread runs the policy: models (and GPU contexts) see a single caller.
        self._thread = ThreadPoolExecutor(max_workers=1)

    def describe(self) -> PolicyInfo:
        if self.failed:
            self.failed.check()
        return self.info

    def reset(self, *args: Any, **kwargs: Any) -> int:
        """Forward ``reset`` to a stateful policy; returns this process's id."""
        self.policy.reset(*args, **kwargs)
        return self.pid

    async def act(self, obs: dict[str, Any]) -> tuple[int, np.ndarray]:
        """Actions for one observation batch, and this process's id."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((obs, future))
        if not self._draining:
            self._draining = True
            self._drainer = loop.create_task(self._drain())
        return self.pid, await future

    async def _drain(self) -> None:
        """Answer every waiting request, one merged policy call per round."""
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                requests, self._pending = self._pending, []
                try:
                    merged = merge_observations([obs for obs, _ in requests])
                    actions = await loop.run_in_executor(self._thread, self._call, merged)
                    ends = np.cumsum([len(obs["env_index"]) for obs, _ in requests])
                    if actions.ndim < 2 or len(actions) != ends[-1]:
                        raise ValueError(
                            f"the policy answered {ends[-1]} observations with actions of "
                            f"shape {actions.shape}; expected ({ends[-1]}, D) or ({ends[-1]}, C, D)"
                        )
                    for (_, future), part in zip(
                        requests, np.split(actions, ends[:-1]), strict=True
                    ):
                        future.set_result(part)
                except Exception as exc:  # every waiting worker gets the policy's error
                    for _, future in requests:
                        if not future.done():
                            future.set_exception(exc)
        finally:
            self._draining = False

    def _call(self, obs: dict[str, Any]) -> np.ndarray:
        return as_numpy(self.policy(obs))

    def close(self) -> None:
        close = getattr(getattr(self, "policy", None), "close", None)
        if close is not None:
            close()
        self._thread.shutdown(wait=False)


class RemotePolicy:
    """A worker's view of the policy server: the `Policy` contract over Ray calls."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def ask(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the server; the policy's own exception is raised as itself, not Ray's wrapper."""
        import ray

        try:
            return ray.get(getattr(self.server, method).remote(*args, **kwargs))
        except ray.exceptions.RayTaskError as exc:
            raise exc.cause from None

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        _, actions = self.ask("act", obs)
        return actions


class StatefulRemotePolicy(RemotePolicy):
    """A stateful policy's server (one per worker): ``reset`` is forwarded, and a restart of
    the server during a batch (its memory lost) raises `PolicyLost` so the batch is re-run."""

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.pid: int | None = None

    def reset(self, *args: Any, **kwargs: Any) -> None:
        self.pid = self.ask("reset", *args, **kwargs)

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        pid, actions = self.ask("act", obs)
        if pid != self.pid:
            raise PolicyLost("the policy actor restarted during a batch; the batch is re-run")
        return actions


class EnvWorker:
    """An environment actor: builds its environment once, then rolls out batches of the plan.

    Args:
        env_spec: the environment.
        config: what to run (the plan is rebuilt here from it, batch for batch the
            driver's).
        order: the plan's order.
        server: the policy server's handle, or None to build the policy here.
        policy_spec: the policy, when it is built here (it reads the simulator).
        stateful: the server holds a stateful policy (one server per worker).
    """

    def __init__(
        self,
        env_spec: EnvSpec,
        config: OnlineConfig,
        order: Order,
        server: Any = None,
        policy_spec: PolicySpec | None = None,
        stateful: bool = False,
    ) -> None:
        self.failed: Failed | None = None
        self.config = config
        self.info = PolicyInfo(None, stateful)
        try:
            self.env = build_env(env_spec)
            self.batches = plan(self.env, config, order)
            if server is None:
                assert policy_spec is not None
                self.policy, self.info = build_policy(policy_spec, self.env, env_spec)
            else:
                self.policy = (StatefulRemotePolicy if stateful else RemotePolicy)(server)
        except Exception as exc:  # reported at the first call, with its own type and message
            self.failed = Failed(exc)

    def ready(self) -> PolicyInfo:
        """The policy's info, once the environment is built (raises the worker's set-up error)."""
        if self.failed:
            self.failed.check()
        return self.info

    def run_batch(self, position: int) -> Any:
        """Roll out batch `position` of the plan; yields (key, result) per finished episode."""
        if self.failed:
            self.failed.check()
        batch = self.batches[position]
        for work, result in rollout_batch(self.env, self.policy, batch, self.config):
            key: EpisodeKey = work.key
            yield key, result

    def close(self) -> None:
        for thing in (getattr(self, "policy", None), getattr(self, "env", None)):
            close = getattr(thing, "close", None)
            if close is not None and not isinstance(thing, RemotePolicy):
                close()
