"""An experiment's runs made concrete: each variant's training config (``--dry-run``).

Reads only the protocol and the torch-free config dataclasses: planning (and
``vla-eval run --dry-run``) must never import torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from vla_eval.config import from_dict, to_dict
from vla_eval.errors import UsageError
from vla_eval.experiment.config import SCHEMA, SMOKE, SMOKE_TRIALS, ExperimentConfig, Variant
from vla_eval.results import to_jsonable


@dataclass(frozen=True)
class RunSpec:
    """A variant made concrete: its training config and evaluation settings."""

    variant: Variant
    train: Any  # TrainConfig
    trials: int


def experiment_of(protocol: Any, source: str) -> ExperimentConfig:
    """The protocol's `ExperimentConfig` (UsageError if it has none)."""
    if protocol.experiment is None:
        raise UsageError(f"{source}: missing required section [experiment] (variants to compare)")
    return protocol.experiment


def _set_dotted(tree: dict[str, Any], key: str, value: Any, where: str) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise UsageError(f"{where}: unknown key train.{key}")
        node = node[part]
    if parts[-1] not in node:
        raise UsageError(f"{where}: unknown key train.{key}")
    node[parts[-1]] = copy.deepcopy(value)


def plan_runs(protocol: Any, source: str, smoke: bool = False) -> list[RunSpec]:
    """Every variant's training config: base [train], then --smoke, then the variant."""
    from vla_eval.trainer.config import TrainConfig

    exp = experiment_of(protocol, source)
    base = to_dict(protocol.train)
    specs = []
    for i, variant in enumerate(exp.variants):
        tree = copy.deepcopy(base)
        if smoke:
            for key, value in {**SMOKE, **exp.smoke}.items():
                _set_dotted(tree, key, value, f"{source}: experiment.smoke")
        for key, value in variant.set.items():
            _set_dotted(tree, key, value, f"{source}: experiment.variants[{i}].set")
        tree["name"] = variant.name
        train = from_dict(TrainConfig, tree, f"{source} (variant {variant.name})", prefix="train")
        specs.append(RunSpec(variant, train, SMOKE_TRIALS if smoke else protocol.evaluate.trials))
    return specs


def dry_run(protocol: Any, source: str, smoke: bool = False) -> dict[str, Any]:
    """``{"runs": [...]}``: each run's variant and the settings it changes, nothing trained."""
    exp = experiment_of(protocol, source)
    runs = []
    for spec in plan_runs(protocol, source, smoke):
        runs.append(
            {
                "variant": spec.variant.name,
                "baseline": spec.variant.name == exp.baseline,
                "group": spec.variant.group or None,
                "set": to_jsonable(spec.variant.set),
                "steps": spec.train.steps,
                "trials": spec.trials,
                "train": to_jsonable(to_dict(spec.train)),
            }
        )
    return {"schema": SCHEMA, "experiment": protocol.name, "kind": exp.kind, "runs": runs}
