"""`make_env`: the one door from an environment's name to an environment.

Names: ``tabletop`` (the built-in world); ``metaworld`` / ``metaworld-mt10`` /
``metaworld-ml10`` (Meta-World MT10 or ML10; needs the extra ``sim``); ``gym:ENV_ID``
or ``gym:MODULE:ENV_ID`` (any registered Gymnasium environment, importing MODULE first
to register it; needs the extra ``gym``); or an environment file ``NAME.toml`` (an
``[env]`` table and its ``[splits]``, see `vla_eval.envs.gym.config`). Keyword options
go to the environment's constructor (for Gymnasium, to `gymnasium.make`). An
environment's module is imported only when its name is asked for, so importing this
module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError

#: Built-in names `make_env` accepts (besides ``gym:...`` and environment files).
ENV_NAMES: tuple[str, ...] = ("tabletop", "metaworld", "metaworld-mt10", "metaworld-ml10")


def make_env(
    name: str,
    *,
    workers: int = 1,
    success_key: str | None = None,
    max_steps: int | None = None,
    render: bool = False,
    **options: Any,
) -> Env:
    """An environment by name (see the module docstring).

    Args:
        name: a built-in name, ``gym:[MODULE:]ENV_ID`` or an environment file (``.toml``).
        workers: Gymnasium only: subprocesses stepping episodes (1: in this process).
        success_key: Gymnasium only: the ``info`` key that says an episode succeeded.
        max_steps: Gymnasium only: step limit per episode (a file's ``env.max_steps``
            otherwise). The built-in worlds take theirs as an option where they have one.
        render: Gymnasium only: make environments that can `render` frames (the
            built-in world always can).
        options: the built-in environment's constructor options, or Gymnasium keyword
            arguments (laid over an environment file's).

    >>> make_env("tabletop").action_dim
    7
    """
    if name.startswith("gym:") or name.endswith(".toml"):
        return _gym_env(name, workers, success_key, max_steps, render, options)
    if name not in ENV_NAMES:
        raise UsageError(
            f"unknown environment {name!r}; choose tabletop, metaworld, metaworld-ml10, "
            "gym:ENV_ID or an environment file (.toml)"
        )
    if workers != 1 or success_key is not None:
        what = "--workers" if workers != 1 else "--success-key"
        raise UsageError(f"{what} is for Gymnasium environments (gym:ENV_ID), not {name}")
    if max_steps is not None:
        options = {**options, "max_steps": max_steps}
    if name == "tabletop":
        from vla_eval.envs.tabletop import TabletopEnv

        if options:
            raise UsageError(f"the tabletop environment takes no options, got {sorted(options)}")
        return TabletopEnv()
    from vla_eval.envs.metaworld import MetaWorldEnv

    return MetaWorldEnv("ML10" if name.endswith("ml10") else "MT10", **options)


def _gym_env(
    name: str,
    workers: int,
    success_key: str | None,
    max_steps: int | None,
    render: bool,
    options: dict[str, Any],
) -> Env:
    """A `GymEnv` from ``gym:...`` or an environment file, with the command line's overrides."""
    from dataclasses import replace

    from vla_eval.envs.gym.config import config_from_id, read_env_file
    from vla_eval.envs.gym.env import GymEnv

    if name.startswith("gym:"):
        config = config_from_id(name, options, success_key, max_steps)
    else:
        config = read_env_file(Path(name), overrides=options)
        splits = config.splits
        if max_steps is not None:
            if max_steps < 1:
                raise UsageError(f"max_steps must be at least 1, got {max_steps}")
            splits = {k: replace(s, max_steps=max_steps) for k, s in splits.items()}
        config = replace(config, splits=splits, success_key=success_key or config.success_key)
    return GymEnv(config, workers=workers, render=render)
