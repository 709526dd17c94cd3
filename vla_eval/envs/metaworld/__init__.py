"""Meta-World adapter: the MuJoCo Sawyer benchmarks behind the vectorised `Env` protocol.

`MetaWorldEnv` runs N Meta-World (v3, gymnasium API) environments side by side, so
`vla_eval.online` evaluates a policy in a real physics simulator exactly as it does
in the built-in tabletop world. The tasks are a benchmark's task classes, each in a
*seen* and an *unseen* split; an episode is fixed by its (task, seed): the seed picks
one of the split's 50 goal variants (object and goal positions), so every policy
meets the same episodes and comparisons can be paired.

Splits (the exact definition; `docs/metaworld.md` says the same):

* MT benchmarks (``MT10``, ``MT25``, ``MT50``): *seen* goals of a task class are the
  benchmark's own training goals, ``metaworld.MT10(seed=benchmark_seed).train_tasks``
  (the ones ``gymnasium.make("Meta-World/MT10", seed=benchmark_seed)`` trains on).
  *Unseen* goals are 50 fresh positions from the same sampling ranges, drawn by
  Meta-World's own goal sampler from a held-out seed,
  ``metaworld.MT1(name, seed=HELDOUT_SEED_OFFSET + benchmark_seed).train_tasks``.
* ML benchmarks (``ML10``, ``ML25``, ``ML45``): *seen* tasks are the benchmark's
  training classes with their training goals, *unseen* tasks its held-out test
  classes with their test goals (``MLk(seed=benchmark_seed)``). As in Meta-World,
  the goal position is hidden from the observation (zeros) in ML benchmarks.

Observations are ``{"state": float32 (N, 39), "instruction": list[str]}`` and, when
images are asked for, ``"image": uint8 (N, H, W, 3)``. Actions are Meta-World's
(N, 4) in [-1, 1]: end-effector displacement (x, y, z) and gripper effort.

Meta-World, MuJoCo and gymnasium are imported only when an environment is built
(the optional extra ``sim``); importing this package needs numpy and the package's
`envs.base` and `errors` only. It never imports torch. Modules: `tasks` (benchmarks,
instructions, specs, seeds), `goals` (the goal variants of each split), `env`
(`MetaWorldEnv`) and `expert` (`MetaWorldExpertPolicy`); this file gathers their public
names.
"""

from vla_eval.envs.metaworld.env import MetaWorldEnv
from vla_eval.envs.metaworld.expert import MetaWorldExpertPolicy
from vla_eval.envs.metaworld.goals import goal_vectors
from vla_eval.envs.metaworld.tasks import (
    ACTION_DIM,
    BENCHMARKS,
    CAMERAS,
    GL_BACKENDS,
    GOALS_PER_TASK,
    HELDOUT_SEED_OFFSET,
    INSTRUCTIONS,
    MAX_STEPS,
    PACKAGES,
    STATE_DIM,
    MetaWorldSpec,
    metaworld_version,
)

__all__ = [
    "ACTION_DIM",
    "BENCHMARKS",
    "CAMERAS",
    "GL_BACKENDS",
    "GOALS_PER_TASK",
    "HELDOUT_SEED_OFFSET",
    "INSTRUCTIONS",
    "MAX_STEPS",
    "PACKAGES",
    "STATE_DIM",
    "MetaWorldEnv",
    "MetaWorldExpertPolicy",
    "MetaWorldSpec",
    "goal_vectors",
    "metaworld_version",
]
