"""The scripted expert of an environment, as a policy (a reference to check a pipeline against).

The experts themselves live next to their worlds (`envs.tabletop.expert`,
`envs.metaworld.expert`) because they read the world's privileged state; this module
only picks the right one. It imports the environments' modules when asked, never
torch or the trainer.
"""

from __future__ import annotations

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.policies.base import Policy


def make_expert(env: Env) -> Policy:
    """The scripted expert bound to ``env`` (the tabletop world or Meta-World)."""
    if env.name == "tabletop":
        from vla_eval.envs.tabletop.expert import ExpertPolicy

        return ExpertPolicy(env)  # type: ignore[arg-type]
    if env.name == "metaworld":
        from vla_eval.envs.metaworld.expert import MetaWorldExpertPolicy

        return MetaWorldExpertPolicy(env)  # type: ignore[arg-type]
    raise UsageError(f"the {env.name} environment has no scripted expert")
