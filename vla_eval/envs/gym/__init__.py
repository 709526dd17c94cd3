"""Any registered Gymnasium environment behind the toolkit's vectorised `Env` protocol.

``make_env("gym:ENV_ID")``, ``make_env("gym:MODULE:ENV_ID")`` or an environment file
(`read_env_file`) give a `GymEnv`: `config` reads names, files and splits (standard
library only), `registry` finds ids and builds sub-environments, `episode` makes each
sub-environment run one episode per reset, `observations` turns Gymnasium
observations into the toolkit's keys and `env` steps them with Gymnasium's vector API.
Gymnasium (the extra ``gym``) is imported only when an environment is built.
"""

from vla_eval.envs.gym.config import (
    GymEnvConfig,
    GymSplit,
    config_from_id,
    config_from_tables,
    parse_env_spec,
    read_env_file,
)

__all__ = [
    "GymEnvConfig",
    "GymSplit",
    "config_from_id",
    "config_from_tables",
    "parse_env_spec",
    "read_env_file",
]
