"""The built-in policy factories, registered under ``vla_eval.policies`` like any plug-in.

``tinyvla`` loads a checkpoint of this project's reference trainer (``path=CKPT``;
torch is imported when it is built) and ``expert`` binds the environment's scripted
expert. Both have the plug-in signature ``factory(env, **policy_args) -> policy``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.policies.base import Policy


def tinyvla(env: Env, path: Any, threads: Any = 0) -> Policy:
    """A TinyVLA checkpoint (``path``), checked against the environment's action size.

    Args:
        env: the environment the policy will act in.
        path: the checkpoint file.
        threads: torch CPU threads (0: torch's default).
    """
    from vla_eval.policies.checkpoint import CheckpointPolicy

    file = Path(str(path))
    if not file.is_file():
        raise UsageError(f"{file}: no such checkpoint file")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise UsageError(f"policy tinyvla: threads must be a whole number >= 0, got {threads!r}")
    policy = CheckpointPolicy(file, threads=threads)
    if policy.action_dim != env.action_dim:
        raise UsageError(
            f"{file} predicts {policy.action_dim}-D actions but {env.name} takes "
            f"{env.action_dim}-D actions: this checkpoint does not fit this environment"
        )
    return policy


def expert(env: Env) -> Policy:
    """The environment's scripted expert (the tabletop world and Meta-World have one)."""
    from vla_eval.policies.expert import make_expert

    return make_expert(env)
