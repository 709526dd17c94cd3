"""From a Gymnasium id to environments: imports that register ids, lookup, versions, makers.

An id is looked up after importing the module named with it (``gym:MODULE:ID``) and,
when the id has a namespace (``pkg/Name-v0``) that is an importable module, that
namespace, as Gymnasium itself does. An unknown id is one `UsageError` naming it and the
registered ids that look like it. Gymnasium is imported inside the functions here, so
importing this module needs the standard library only.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from vla_eval.errors import UsageError

INSTALL_HINT = "pip install 'vla-eval[gym]'"


def import_gymnasium() -> Any:
    """The gymnasium module, or a UsageError naming the extra to install."""
    try:
        import gymnasium
    except ImportError:
        raise UsageError(f"Gymnasium environments need gymnasium: {INSTALL_HINT}") from None
    return gymnasium


def import_registering_module(module: str | None, env_id: str) -> None:
    """Import ``module`` (must work) and the id's namespace (if it is a module)."""
    if module is not None:
        _import(module, env_id)
    namespace = env_id.partition("/")[0] if "/" in env_id else None
    if namespace and namespace.isidentifier() and namespace != module:
        try:
            found = importlib.util.find_spec(namespace) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            _import(namespace, env_id)


def _import(module: str, env_id: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"cannot import module {module!r} named for {env_id}: {exc}") from None
    except Exception as exc:  # the module's own code failed (a bad MUJOCO_GL, say)
        raise UsageError(
            f"importing module {module!r} for {env_id} failed: {type(exc).__name__}: {exc}"
        ) from exc


def check_registered(env_id: str, module: str | None) -> Any:
    """The id's `gymnasium.envs.registration.EnvSpec`; an unknown id is a UsageError."""
    gym = import_gymnasium()
    import_registering_module(module, env_id)
    if env_id in gym.registry:
        return gym.registry[env_id]
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    if close:
        hint = f"; did you mean {', '.join(close)}?"
    else:
        hint = "" if module else " (gym:MODULE:ID imports the module that registers it first)"
    raise UsageError(f"unknown Gymnasium id {env_id!r}{hint}")


def registering_package(spec: Any) -> str | None:
    """The top-level package of the code behind an id (its entry point's module)."""
    entry = spec.entry_point if spec.entry_point is not None else spec.vector_entry_point
    if isinstance(entry, str):
        return entry.partition(":")[0].split(".")[0]
    module = getattr(entry, "__module__", None)
    return module.split(".")[0] if module else None


def distribution_of(package: str | None) -> str | None:
    """The installed distribution that provides a top-level package (``gym_pusht`` -> gym-pusht)."""
    if package is None:
        return None
    from importlib import metadata

    names = metadata.packages_distributions().get(package)
    return sorted(names)[0] if names else None


def package_version(distribution: str | None) -> str:
    """``name-version`` of an installed distribution, or ``unknown``."""
    from importlib import metadata

    if distribution is None:
        return "unknown"
    try:
        return f"{distribution}-{metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return f"{distribution}-unknown"


@dataclass(frozen=True)
class EnvMaker:
    """Builds one sub-environment of a vector env (picklable: it runs in worker processes).

    Attributes:
        env_id: the registered id.
        module: imported first, so the id is registered in a fresh worker too.
        kwargs_json: `gymnasium.make` keyword arguments as JSON.
        render: make it with ``render_mode="rgb_array"``.
        success_keys: the ``info`` keys read for success, in order.
        max_steps: step limit per episode (None: the environment's own).
    """

    env_id: str
    module: str | None
    kwargs_json: str
    render: bool
    success_keys: tuple[str, ...]
    max_steps: int | None

    def __call__(self) -> Any:
        import json

        from vla_eval.envs.gym.episode import EpisodeEnd

        gym = import_gymnasium()
        import_registering_module(self.module, self.env_id)
        kwargs = json.loads(self.kwargs_json)
        if self.render:
            kwargs["render_mode"] = "rgb_array"
        try:
            env = gym.make(self.env_id, **kwargs)
        except (TypeError, ValueError) as exc:  # an argument it does not take, a bad value
            raise UsageError(f"gym:{self.env_id} cannot be made with {kwargs}: {exc}") from None
        return EpisodeEnd(env, self.success_keys, self.max_steps)
