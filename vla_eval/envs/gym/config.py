"""What a Gymnasium environment is run with: the ``gym:`` names, environment files and splits.

An environment file (or a protocol file's ``[env]`` section) names a registered
Gymnasium id, the keyword arguments it is made with, how success is read and the
splits: each split lays its own arguments over the common ones and starts its seeds at
its own offset, so a benchmark's held-out variations become the ``unseen`` split::

    [env]
    id = "gym_pusht/PushT-v0"
    kwargs = { obs_type = "state" }
    max_steps = 300

    [splits.seen]
    seeds_from = 0

    [splits.unseen]
    env_args = { block_cog = [0, 60] }
    seeds_from = 100000

Reading is strict: an unknown key or a value of the wrong type is a `UsageError` naming
the key and the file. Standard library and `vla_eval.errors` / `vla_eval.inputs` only:
reading a file imports neither numpy nor Gymnasium.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError

MAX_ENV_FILE_BYTES = 1024 * 1024
MAX_SEED_OFFSET = 2**62  # Gymnasium seeds are Python ints; keep offset + seed well inside int64

_ENV_KEYS = ("id", "module", "kwargs", "success_key", "max_steps", "task", "instruction")
_SPLIT_KEYS = ("env_args", "seeds_from")


@dataclass(frozen=True)
class GymSplit:
    """A split's episodes: the environment arguments and where its seeds start.

    Stored as `Task.spec`, so it is frozen and compared by value. Episode ``seed`` of
    this split runs ``reset(seed=seeds_from + seed)`` in an environment made with
    `kwargs`.

    Attributes:
        args: the environment's keyword arguments as canonical JSON (sorted keys).
        seeds_from: the offset added to every episode seed.
        max_steps: step limit per episode (None: the environment's own limit).
    """

    args: str = "{}"
    seeds_from: int = 0
    max_steps: int | None = None

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments `gymnasium.make` gets for this split."""
        return json.loads(self.args)


@dataclass(frozen=True)
class GymEnvConfig:
    """A Gymnasium environment as the toolkit runs it.

    Attributes:
        env_id: the registered id (``gym_pusht/PushT-v0``).
        module: imported before the id is looked up, to register it (None: only the
            id's own namespace is tried).
        splits: split name -> `GymSplit`, in the file's order.
        success_key: the ``info`` key that says an episode succeeded (None:
            ``is_success``, else ``success``).
        task: the task name in episode records (default: the id without its namespace).
        instruction: a task description given to the policy when the environment has none.
    """

    env_id: str
    module: str | None = None
    splits: dict[str, GymSplit] = field(default_factory=dict)
    success_key: str | None = None
    task: str | None = None
    instruction: str | None = None

    @property
    def task_name(self) -> str:
        return self.task or self.env_id.rpartition("/")[2]


def canonical_args(args: dict[str, Any], where: str) -> str:
    """Keyword arguments as canonical JSON; a value JSON cannot hold is a UsageError."""
    try:
        return json.dumps(args, sort_keys=True, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"{where}: arguments must be numbers, strings, booleans, lists or tables ({exc})"
        ) from None


def parse_env_spec(text: str) -> tuple[str | None, str]:
    """``gym:ENV_ID`` or ``gym:MODULE:ENV_ID`` -> (module or None, id).

    >>> parse_env_spec("gym:gym_pusht:gym_pusht/PushT-v0")
    ('gym_pusht', 'gym_pusht/PushT-v0')
    >>> parse_env_spec("gym:CartPole-v1")
    (None, 'CartPole-v1')
    """
    parts = text.split(":")
    if parts[0] != "gym" or len(parts) not in (2, 3) or not all(parts[1:]):
        raise UsageError(f"--env {text!r}: expected gym:ENV_ID or gym:MODULE:ENV_ID")
    return (parts[1], parts[2]) if len(parts) == 3 else (None, parts[1])


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib


def _check_keys(table: Any, allowed: tuple[str, ...], where: str, source: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UsageError(f"{source}: {where} must be a table, got {type(table).__name__}")
    for key in table:
        if key not in allowed:
            raise UsageError(
                f"{source}: unknown key {where}.{key} (known keys: {', '.join(allowed)})"
            )
    return table


def _typed(table: dict[str, Any], key: str, kind: type, where: str, source: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = {int: "an integer", str: "a string", dict: "a table"}[kind]
        raise UsageError(f"{source}: {where}.{key} must be {expected}, got {value!r}")
    return value


def config_from_tables(
    env: Any, splits: Any, source: str, overrides: dict[str, Any] | None = None
) -> GymEnvConfig:
    """A `GymEnvConfig` from an ``[env]`` table and an optional ``[splits]`` table.

    Args:
        env: the ``[env]`` table (``id``, ``module``, ``kwargs``, ``success_key``,
            ``max_steps``, ``task``, ``instruction``).
        splits: ``{name: {env_args, seeds_from}}`` or None (one split, ``seen``).
        source: the file, named in every error.
        overrides: keyword arguments laid over every split's (``--env-arg``).
    """
    env = _check_keys(env, _ENV_KEYS, "env", source)
    if "id" not in env:
        raise UsageError(f"{source}: missing required key env.id")
    env_id = _typed(env, "id", str, "env", source)
    module = _typed(env, "module", str, "env", source)
    if module is None and env_id.count(":") == 1:
        module, env_id = env_id.split(":")
    base = _typed(env, "kwargs", dict, "env", source) or {}
    max_steps = _typed(env, "max_steps", int, "env", source)
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"{source}: env.max_steps must be at least 1, got {max_steps}")
    if splits is None:
        tables: dict[str, Any] = {"seen": {}}
    elif isinstance(splits, dict):
        tables = splits
    else:
        raise UsageError(f"{source}: splits must be a table of [splits.NAME] tables")
    if not tables:
        raise UsageError(f"{source}: [splits] names no split")
    built = {}
    for name, table in tables.items():
        where = f"splits.{name}"
        table = _check_keys(table, _SPLIT_KEYS, where, source)
        if not name or "/" in name:
            raise UsageError(f"{source}: split name {name!r} must be non-empty without '/'")
        own = _typed(table, "env_args", dict, where, source) or {}
        offset = _typed(table, "seeds_from", int, where, source) or 0
        if not 0 <= offset <= MAX_SEED_OFFSET:
            raise UsageError(f"{source}: {where}.seeds_from must be from 0 to 2**62, got {offset}")
        args = canonical_args({**base, **own, **(overrides or {})}, f"{source}: {where}")
        built[name] = GymSplit(args, offset, max_steps)
    return GymEnvConfig(
        env_id=env_id,
        module=module,
        splits=built,
        success_key=_typed(env, "success_key", str, "env", source),
        task=_task_name(_typed(env, "task", str, "env", source), source),
        instruction=_typed(env, "instruction", str, "env", source),
    )


def _task_name(name: str | None, source: str) -> str | None:
    if name is not None and (not name or "/" in name):
        raise UsageError(f"{source}: env.task {name!r} must be non-empty without '/'")
    return name


def read_env_file(path: str | Path, overrides: dict[str, Any] | None = None) -> GymEnvConfig:
    """Read an environment file: an ``[env]`` table and optional ``[splits.NAME]`` tables.

    Raises:
        UsageError: a missing or unreadable file, invalid TOML, an unknown key or a
            wrong type (the message names the file and the key).
    """
    from vla_eval.inputs import read_text

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such environment file")
    text = read_text(path, str(path), limit=MAX_ENV_FILE_BYTES)
    try:
        raw = _toml().loads(text)
    except _toml().TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    for key in raw:
        if key not in ("env", "splits"):
            raise UsageError(f"{path}: unknown key {key} (known keys: env, splits)")
    if "env" not in raw:
        raise UsageError(f"{path}: missing required section [env]")
    return config_from_tables(raw["env"], raw.get("splits"), str(path), overrides)


def config_from_id(
    spec: str, env_args: dict[str, Any], success_key: str | None, max_steps: int | None
) -> GymEnvConfig:
    """The one-split config of ``gym:[MODULE:]ENV_ID`` with ``env_args`` as its kwargs."""
    module, env_id = parse_env_spec(spec)
    if max_steps is not None and max_steps < 1:
        raise UsageError(f"max_steps must be at least 1, got {max_steps}")
    args = canonical_args(env_args, spec)
    return GymEnvConfig(
        env_id=env_id,
        module=module,
        splits={"seen": GymSplit(args, 0, max_steps)},
        success_key=success_key,
    )
