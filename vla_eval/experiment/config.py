"""The ``[experiment]`` section of a protocol: variants, baseline, kind, and ``--smoke``.

Frozen dataclasses read by `vla_eval.protocol`; the standard library and
`vla_eval.errors` only, so that reading a protocol imports neither numpy nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from vla_eval.errors import UsageError

SCHEMA = "vla-eval/experiment/1"
#: The schema of an experiment trained with several seeds per variant (it adds ``seed``
#: to each planned run, ``runs`` to each variant and to each comparison).
SCHEMA_SEEDS = "vla-eval/experiment/2"
MAX_SEEDS = 100  # training runs per variant
SMOKE_SEEDS = 2  # --smoke keeps the first two seeds of each variant

Kind = Literal["data_mix", "temperature_sweep", "stage_ablation", "hparam_sensitivity", "custom"]

#: What ``--smoke`` does to every variant before its own settings: the smallest run
#: that still goes through every stage of the recipe (seconds on a CPU).
SMOKE: dict[str, Any] = {
    "steps": 24,
    "batch_size": 16,
    "eval_every": 12,
    "checkpoint_every": 12,
    "threads": 1,
    "data.counts": {"pick": 8, "place": 8, "stack": 4, "pour": 4},
    "data.heldout_per_task": 2,
    "data.web_examples": 64,
    "model.width": 32,
    "model.depth": 1,
    "model.heads": 2,
    "model.vision_channels": 16,
}
SMOKE_TRIALS = 2


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment.

    Attributes:
        name: label in tables and plots (unique within the experiment).
        set: dotted keys under ``[train]`` and their values for this variant,
            e.g. ``{"sampling.temperature" = 2.0}``.
        group: for hyperparameter sensitivity, the hyperparameter this variant moves.
        description: a sentence for the report.
        seeds: training seeds of this variant (one run each); empty: the
            experiment's ``seeds``, or one run with the protocol's ``train.seed``.
    """

    name: str
    set: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    description: str = ""
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_seeds(self.seeds, f"experiment.variants ({self.name}).seeds")


@dataclass(frozen=True)
class ExperimentConfig:
    """The ``[experiment]`` section of a protocol."""

    baseline: str
    variants: tuple[Variant, ...]
    kind: Kind = "custom"
    question: str = ""
    smoke: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_seeds(self.seeds, "experiment.seeds")
        names = [v.name for v in self.variants]
        if len(names) < 2:
            raise UsageError("an experiment needs at least two variants")
        if len(set(names)) != len(names):
            raise UsageError(f"variant names repeat: {names}")
        if self.baseline not in names:
            raise UsageError(f"baseline {self.baseline!r} is not one of the variants {names}")

    def seeds_of(self, variant: Variant) -> tuple[int, ...]:
        """The variant's training seeds: its own, else the experiment's (empty: one run
        with the protocol's ``train.seed``, as an experiment without seeds)."""
        return variant.seeds or self.seeds

    @property
    def seeded(self) -> bool:
        """Whether any variant is trained with a list of seeds."""
        return any(self.seeds_of(v) for v in self.variants)


def check_seeds(seeds: tuple[int, ...], key: str) -> None:
    """UsageError unless `seeds` are distinct whole numbers in [0, 2^63), at most MAX_SEEDS."""
    if len(seeds) > MAX_SEEDS:
        raise UsageError(f"{key}: at most {MAX_SEEDS} seeds, got {len(seeds)}")
    if any(not 0 <= s < 2**63 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(
            f"{key} must be distinct whole numbers in [0, 2^63 - 1], got {list(seeds)}"
        )
