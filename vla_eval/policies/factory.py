"""`make_policy`: the one door from a policy spec (as typed on the command line) to a policy.

A spec is a registered name (entry-point group ``vla_eval.policies``: the built-ins
``tinyvla`` and ``expert``, and whatever installed packages register), a
``package.module:factory``, or the path of a TinyVLA checkpoint (shorthand for
``tinyvla`` with ``path=``). The factory is called as ``factory(env, **policy_args)``;
every way it can fail becomes a one-line `UsageError` naming the spec. The policy
modules are imported when a spec names them, so importing this module is cheap; it
never imports the trainer itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.policies.base import Policy
from vla_eval.policies.registry import (
    check_arguments,
    describe_error,
    is_module_spec,
    registered,
    resolve,
)


@dataclass(frozen=True)
class NamedPolicy:
    """A policy with the names a run records.

    Attributes:
        policy: observation batch -> actions (see `Policy`).
        name: written into every episode record as ``policy``: the policy's own
            ``name`` attribute ("expert" for the built-in expert, a checkpoint's file
            stem), else the spec.
        policy_id: identifies the policy in the run fingerprint: the policy's
            ``fingerprint()`` when it has one (a checkpoint: a hash of the file),
            else the spec, the environment's name and the sorted policy arguments,
            so a resumed run never mixes two policies.
        path: the policy's file (its ``path`` attribute), or None.
        spec: the resolved spec (``tinyvla`` for a checkpoint path).
        args: the policy arguments the factory was called with.
    """

    policy: Policy
    name: str
    policy_id: str
    path: Path | None = None
    spec: str = ""
    args: dict[str, Any] = field(default_factory=dict)


def make_policy(
    spec: str, env: Env, *, env_name: str | None = None, **policy_args: Any
) -> NamedPolicy:
    """The policy ``spec`` names, built for the environment it will act in.

    Args:
        spec: a registered name (``expert``, ``tinyvla``, a plug-in's), a
            ``package.module:factory``, or the path of a TinyVLA checkpoint.
        env: the environment (from `vla_eval.envs.factory.make_env`).
        env_name: the name ``env`` was made from (``metaworld-ml10``); the id of a
            policy without ``fingerprint()`` records it. Defaults to ``env.name``.
        **policy_args: keyword arguments for the factory (``path=`` for ``tinyvla``).

    Raises:
        UsageError: an unknown name or module, arguments the factory does not take,
            a factory that raises (``policy factory X failed: ValueError: ...``), or
            one that returns something that is not callable.
    """
    spec, policy_args = _expand_shorthand(spec, policy_args)
    factory = resolve(spec)
    check_arguments(factory, env, policy_args)
    try:
        policy = factory.make(env, **policy_args)
    except UsageError:
        raise
    except Exception as exc:  # the factory's own failure, told in one line
        raise UsageError(f"policy factory {spec} failed: {describe_error(exc)}") from exc
    if not callable(policy):
        raise UsageError(
            f"policy factory {spec} returned a {type(policy).__name__}, not a policy "
            "(a callable from an observation batch to actions)"
        )
    name = getattr(policy, "name", None)
    path = getattr(policy, "path", None)
    return NamedPolicy(
        policy,
        name if isinstance(name, str) and name else spec,
        _policy_id(policy, spec, policy_args, env_name or env.name),
        Path(path) if isinstance(path, (str, Path)) else None,
        spec,
        dict(policy_args),
    )


def _expand_shorthand(spec: str, policy_args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A checkpoint path -> (``tinyvla``, path=...); any other spec is kept."""
    if not isinstance(spec, str) or not spec:
        raise UsageError(f"a policy spec must be a non-empty string, got {spec!r}")
    if spec in registered() or is_module_spec(spec):
        return spec, policy_args
    looks_like_path = os.sep in spec or "/" in spec or Path(spec).suffix or Path(spec).exists()
    if not looks_like_path:
        return spec, policy_args  # `resolve` names it as an unknown policy
    if "path" in policy_args:
        raise UsageError(f"{spec} is a checkpoint path; do not give --policy-arg path= as well")
    return "tinyvla", {**policy_args, "path": spec}


def _policy_id(policy: Any, spec: str, args: dict[str, Any], env_name: str) -> str:
    """``fingerprint()`` when the policy has one, else spec, environment and sorted args."""
    fingerprint = getattr(policy, "fingerprint", None)
    if callable(fingerprint):
        try:
            value = fingerprint()
        except Exception as exc:  # the policy's own failure, told in one line
            raise UsageError(f"policy {spec}: fingerprint() failed: {describe_error(exc)}") from exc
        return str(value)
    if not args:
        return f"{spec}:{env_name}"
    return f"{spec}:{env_name}:{json.dumps(args, sort_keys=True, default=str)}"
