"""Environments policies are rolled out in: the `Env` protocol and the built-in tabletop world.

Importing this package is cheap (no numpy-heavy work, no torch); the tabletop world
lives in `vla_eval.envs.tabletop` and its text vocabulary in `vla_eval.envs.text`.
"""

from vla_eval.envs.base import Env, Task

__all__ = ["Env", "Task"]
