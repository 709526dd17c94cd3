"""Environments policies are rolled out in: the `Env` protocol, `make_env`, the built-in worlds.

Importing this package is cheap (no numpy-heavy work, no torch): `base` holds the
`Env` and `Task` protocols, `factory` the one door from an environment's name to an
environment (`make_env`), `tabletop` the built-in world (its language in
`vla_eval.envs.tabletop.text`), `metaworld` the Meta-World adapter and `gym` any
registered Gymnasium environment (``gym:ENV_ID`` or an environment file). Nothing here
imports the rollout loop, the trainer or torch.
"""

from vla_eval.envs.base import Env, Task
from vla_eval.envs.factory import make_env

__all__ = ["Env", "Task", "make_env"]
