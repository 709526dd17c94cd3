"""`make_policy`: the one door from a policy spec (as typed on the command line) to a policy.

A spec is ``expert`` (the environment's scripted expert) or the path of a TinyVLA
checkpoint. Plug-in policies will register here later (entry-point group
``vla_eval.policies``). The policy modules are imported when a spec names them, so
importing this module is cheap; it never imports the trainer itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.policies.base import Policy


@dataclass(frozen=True)
class NamedPolicy:
    """A policy with the names a run records.

    Attributes:
        policy: observation batch -> actions (see `Policy`).
        name: written into every episode record as ``policy`` ("expert", a
            checkpoint's file stem).
        policy_id: identifies the policy in the run fingerprint (for a checkpoint,
            a hash of the file), so a resumed run never mixes two policies.
        path: the checkpoint file, or None for a built-in policy.
    """

    policy: Policy
    name: str
    policy_id: str
    path: Path | None = None


def make_policy(spec: str, env: Env, *, env_name: str | None = None) -> NamedPolicy:
    """The policy ``spec`` names, checked against the environment it will act in.

    Args:
        spec: ``expert`` or the path of a TinyVLA checkpoint file.
        env: the environment (from `vla_eval.envs.factory.make_env`).
        env_name: the name ``env`` was made from (``metaworld-ml10``); the expert's
            id records it. Defaults to ``env.name``.
    """
    if spec == "expert":
        from vla_eval.policies.expert import make_expert

        return NamedPolicy(make_expert(env), "expert", f"expert:{env_name or env.name}")
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint file")
    from vla_eval.policies.checkpoint import CheckpointPolicy

    policy = CheckpointPolicy(path)
    if policy.action_dim != env.action_dim:
        raise UsageError(
            f"{path} predicts {policy.action_dim}-D actions but {env.name} takes "
            f"{env.action_dim}-D actions: this checkpoint does not fit this environment"
        )
    return NamedPolicy(policy, path.stem, policy.fingerprint(), path)
