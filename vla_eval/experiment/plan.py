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
from vla_eval.experiment.config import (
    SCHEMA,
    SCHEMA_SEEDS,
    SMOKE,
    SMOKE_SEEDS,
    SMOKE_TRIALS,
    ExperimentConfig,
    Variant,
)
from vla_eval.results import to_jsonable


@dataclass(frozen=True)
class RunSpec:
    """A variant made concrete: its training config and evaluation settings.

    Attributes:
        variant: the arm; index: its position among the variants, from 1.
        train: its TrainConfig; trials: online episodes per (task, split).
        seed: the training seed of this run when the variant has a list of seeds,
            None for the one run of a variant without (it keeps ``train.seed``).
    """

    variant: Variant
    train: Any  # TrainConfig
    trials: int
    index: int = 1
    seed: int | None = None


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
    """Every run's training config: base [train], then --smoke, then the variant, then
    the run's seed (one run per seed of a variant with seeds; --smoke keeps two)."""
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
        trials = SMOKE_TRIALS if smoke else protocol.evaluate.trials
        seeds = exp.seeds_of(variant)[: SMOKE_SEEDS if smoke else None]
        for seed in seeds or (None,):
            if seed is not None:
                tree["seed"] = seed
            where = f"{source} (variant {variant.name})"
            train = from_dict(TrainConfig, tree, where, prefix="train")
            specs.append(RunSpec(variant, train, trials, i + 1, seed))
    return specs


def dry_run(protocol: Any, source: str, smoke: bool = False) -> dict[str, Any]:
    """``{"runs": [...]}``: each run's variant (and seed, when variants have seeds) and
    the settings it changes, nothing trained."""
    exp = experiment_of(protocol, source)
    runs = []
    for spec in plan_runs(protocol, source, smoke):
        run = {
            "variant": spec.variant.name,
            "baseline": spec.variant.name == exp.baseline,
            "group": spec.variant.group or None,
            "set": to_jsonable(spec.variant.set),
            "steps": spec.train.steps,
            "trials": spec.trials,
            "train": to_jsonable(to_dict(spec.train)),
        }
        if exp.seeded:
            run["seed"] = spec.train.seed
        runs.append(run)
    schema = SCHEMA_SEEDS if exp.seeded else SCHEMA
    return {"schema": schema, "experiment": protocol.name, "kind": exp.kind, "runs": runs}
