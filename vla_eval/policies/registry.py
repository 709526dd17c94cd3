"""From a policy spec to its factory: registered names and ``package.module:factory``.

Names come from the entry-point group ``vla_eval.policies`` (`importlib.metadata`), so
an installed package registers its own policies the way the built-ins do (``tinyvla``,
``expert``, declared in this project's ``pyproject.toml``). A spec with a colon names a
factory directly: ``my_lab.policies:make_policy``. A factory is called as
``factory(env, **policy_args)`` and returns a policy (see `vla_eval.policies.Policy`).
Standard library only; the factory's module is imported when the spec is resolved.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vla_eval.errors import UsageError

#: The entry-point group a package declares its policy factories in.
GROUP = "vla_eval.policies"

_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_MODULE_SPEC = re.compile(rf"({_DOTTED}):({_DOTTED})")


@dataclass(frozen=True)
class Factory:
    """A resolved policy spec.

    Attributes:
        spec: what the user typed (``tinyvla``, ``pkg.mod:make``).
        target: where the factory lives, ``module:attribute``.
        make: the factory itself, ``make(env, **policy_args) -> policy``.
    """

    spec: str
    target: str
    make: Callable[..., Any]


def is_module_spec(spec: str) -> bool:
    """Whether ``spec`` has the form ``package.module:factory``.

    >>> is_module_spec("my_lab.policies:make"), is_module_spec("expert")
    (True, False)
    """
    return _MODULE_SPEC.fullmatch(spec) is not None


def registered() -> dict[str, str]:
    """Registered policy names -> their ``module:attribute`` target, sorted by name."""
    from importlib.metadata import entry_points

    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    return dict(sorted(found.items()))


def resolve(spec: str) -> Factory:
    """The factory a registered name or a ``package.module:factory`` spec names.

    Raises:
        UsageError: an unknown name (the message lists the registered ones), a module
            that cannot be imported, an attribute it lacks, or one that is not callable.
    """
    names = registered()
    if spec in names:
        return _load(spec, names[spec], f"policy {spec!r} (entry point {names[spec]})")
    if is_module_spec(spec):
        return _load(spec, spec, f"policy factory {spec}")
    listed = ", ".join(names) or "none"
    raise UsageError(
        f"unknown policy {spec!r}; registered policies: {listed} "
        "(or give package.module:factory, or a checkpoint file)"
    )


def _load(spec: str, target: str, what: str) -> Factory:
    """Import ``module:attribute`` (``attribute`` may be dotted) with errors naming it."""
    match = _MODULE_SPEC.fullmatch(target)
    if match is None:
        raise UsageError(f"{what}: {target!r} is not of the form package.module:factory")
    module_name, attribute = match.groups()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise UsageError(f"{what}: no module named {exc.name!r}") from None
        raise UsageError(f"{what}: importing {module_name} failed: {describe_error(exc)}") from exc
    except Exception as exc:  # the module's own code failed; the user needs its message
        raise UsageError(f"{what}: importing {module_name} failed: {describe_error(exc)}") from exc
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{what}: module {module_name} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{what}: {target} is a {type(obj).__name__}, not a factory")
    return Factory(spec, target, obj)


def check_arguments(factory: Factory, env: Any, args: dict[str, Any]) -> None:
    """A UsageError naming the factory's parameters when ``args`` do not fit its signature."""
    try:
        signature = inspect.signature(factory.make)
    except (TypeError, ValueError):
        return  # a builtin or C callable: let the call itself decide
    try:
        signature.bind(env, **args)
    except TypeError as exc:
        params = [p for p in list(signature.parameters)[1:]]
        takes = ", ".join(params) if params else "no policy arguments"
        raise UsageError(
            f"policy {factory.spec}: {exc} (it takes {takes}; give them as --policy-arg KEY=VALUE)"
        ) from None


def describe_error(exc: BaseException) -> str:
    """``TypeName: message`` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
