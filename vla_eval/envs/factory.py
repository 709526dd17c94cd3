"""`make_env`: the one door from an environment's name to an environment.

Names: ``tabletop`` (the built-in world) and ``metaworld`` / ``metaworld-mt10`` /
``metaworld-ml10`` (Meta-World MT10 or ML10; needs the extra ``sim``). Keyword
options go to the environment's constructor. An environment's module is imported
only when its name is asked for, so importing this module is cheap.
"""

from __future__ import annotations

from typing import Any

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError

#: Names `make_env` accepts.
ENV_NAMES: tuple[str, ...] = ("tabletop", "metaworld", "metaworld-mt10", "metaworld-ml10")


def make_env(name: str, **options: Any) -> Env:
    """An environment by name (see the module docstring); ``options`` go to its constructor.

    >>> make_env("tabletop").action_dim
    7
    """
    if name == "tabletop":
        from vla_eval.envs.tabletop import TabletopEnv

        if options:
            raise UsageError(f"the tabletop environment takes no options, got {sorted(options)}")
        return TabletopEnv()
    if name in ("metaworld", "metaworld-mt10", "metaworld-ml10"):
        from vla_eval.envs.metaworld import MetaWorldEnv

        return MetaWorldEnv("ML10" if name.endswith("ml10") else "MT10", **options)
    raise UsageError(f"unknown environment {name!r}; choose tabletop, metaworld or metaworld-ml10")
