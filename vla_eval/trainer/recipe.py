"""The training recipe: its stages, what each trains, their learning rates and data mix.

The recipe (RECIPE.md, section 2) trains in three stages, each with its own AdamW
optimizer (weight decay 0.01) and a cosine schedule with linear warmup over the first
3% of its steps: 1 alignment (1-5% of steps; projection and action head train, the
vision encoder and backbone stay frozen; LR 1e-3), 2 co-fine-tuning (~80%; the whole
model; LR 2e-5; robot and web data mixed), 3 specialisation (~15%; the whole model,
or the backbone frozen, or LoRA adapters on the backbone; LR 1e-5; robot data only:
every task of the built-in world is a target task). A one-stage recipe (everything
trainable from the start) is the ablation baseline. The decisions live here as frozen
dataclasses and small named functions (`build_recipe` turns a `RecipeConfig` into a
`Recipe`) so that the training loop only calls them; the schedule is in `schedule`,
freezing and the optimizer step in `optim`. It needs no torch itself (only the model's
part names); it must not depend on the training loop or the data pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from vla_eval.errors import UsageError
from vla_eval.trainer.config import PARTS, RecipeConfig
from vla_eval.trainer.schedule import check_schedule, positive_int

Stage3Mode = Literal["full", "frozen_backbone", "lora"]
STAGE3_MODES: tuple[str, ...] = ("full", "frozen_backbone", "lora")


@dataclass(frozen=True)
class Stage:
    """One stage of the recipe.

    Attributes:
        name: short name used in logs and checkpoints.
        share: fraction of the run's optimizer steps this stage gets.
        lr: peak learning rate.
        trainable: named parts whose parameters train (the rest are frozen).
        lora: train only LoRA adapters on the backbone's linear layers (then
            ``trainable`` must be empty: everything else is frozen).
        web_ratio: fraction of each batch drawn from web vision-language data.
        warmup_frac: share of the stage's steps spent in linear warm-up.
        min_lr_frac: LR at the end of the cosine, as a fraction of ``lr`` (> 0).
        weight_decay: AdamW weight decay on weight matrices.
    """

    name: str
    share: float
    lr: float
    trainable: tuple[str, ...]
    lora: bool = False
    web_ratio: float = 0.0
    warmup_frac: float = 0.03
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        unknown = [p for p in self.trainable if p not in PARTS]
        if unknown:
            raise UsageError(
                f"stage {self.name!r}: unknown part(s) {', '.join(unknown)}; parts are {', '.join(PARTS)}"
            )
        if not (0 < self.share <= 1):
            raise UsageError(f"stage {self.name!r}: share must lie in (0, 1], got {self.share}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"stage {self.name!r}: lr must be a positive number, got {self.lr}")
        if self.lora and self.trainable:
            raise UsageError(f"stage {self.name!r}: a LoRA stage trains only the adapters")
        if not self.lora and not self.trainable:
            raise UsageError(f"stage {self.name!r}: nothing would train")
        if not (0 <= self.web_ratio < 1):
            raise UsageError(
                f"stage {self.name!r}: web_ratio must lie in [0, 1), got {self.web_ratio}"
            )
        check_schedule(self.warmup_frac, self.min_lr_frac)
        if not (0 <= self.weight_decay < 1):
            raise UsageError(f"stage {self.name!r}: weight_decay must lie in [0, 1)")


@dataclass(frozen=True)
class Recipe:
    """A sequence of stages plus the settings every stage shares.

    Attributes:
        name: ``"three_stage"``, ``"one_stage"`` or a user's name.
        stages: the stages in order; their shares must sum to 1.
        grad_clip: max global gradient norm (the recipe: 1.0).
        grad_accum: micro-batches per optimizer step.
        lora_rank: rank of LoRA adapters (used by a LoRA stage).
        lora_alpha: LoRA scale numerator.
    """

    name: str
    stages: tuple[Stage, ...]
    grad_clip: float = 1.0
    grad_accum: int = 1
    lora_rank: int = 8
    lora_alpha: float = 16.0

    def __post_init__(self) -> None:
        if not self.stages:
            raise UsageError(f"recipe {self.name!r} has no stages")
        total = sum(s.share for s in self.stages)
        if abs(total - 1.0) > 1e-6:
            raise UsageError(f"recipe {self.name!r}: stage shares sum to {total:g}, not 1")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise UsageError(f"recipe {self.name!r}: stage names repeat: {names}")
        if not (math.isfinite(self.grad_clip) and self.grad_clip > 0):
            raise UsageError(f"grad_clip must be a positive number, got {self.grad_clip}")
        if (
            isinstance(self.grad_accum, bool)
            or not isinstance(self.grad_accum, int)
            or self.grad_accum < 1
        ):
            raise UsageError(f"grad_accum must be an integer >= 1, got {self.grad_accum!r}")
        if (
            isinstance(self.lora_rank, bool)
            or not isinstance(self.lora_rank, int)
            or self.lora_rank < 1
        ):
            raise UsageError(f"lora_rank must be an integer >= 1, got {self.lora_rank!r}")

    def stage_steps(self, total_steps: int) -> tuple[int, ...]:
        """Optimizer steps per stage for a run of `total_steps` (largest remainder, each >= 1).

        >>> three_stage().stage_steps(1000)
        (50, 800, 150)
        """
        total = positive_int(total_steps, "total_steps")
        k = len(self.stages)
        if total < k:
            raise UsageError(f"{total} steps cannot cover {k} stages; give at least {k}")
        exact = [s.share * total for s in self.stages]
        steps = [max(1, math.floor(round(x, 9))) for x in exact]
        # Hand leftover steps to the largest remainders (or take from the largest stages).
        order = sorted(range(k), key=lambda i: exact[i] - steps[i], reverse=True)
        i = 0
        while sum(steps) < total:
            steps[order[i % k]] += 1
            i += 1
        while sum(steps) > total:
            j = max(range(k), key=lambda m: steps[m])
            steps[j] -= 1
        return tuple(steps)

    def stage_at(self, step: int, total_steps: int) -> tuple[int, int]:
        """(stage index, step within that stage) for global optimizer step `step`."""
        steps = self.stage_steps(total_steps)
        if step < 0 or step >= total_steps:
            raise UsageError(f"step {step} is outside 0..{total_steps - 1}")
        start = 0
        for i, n in enumerate(steps):
            if step < start + n:
                return i, step - start
            start += n
        raise AssertionError("unreachable")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, numbers, lists) for checkpoints and results files."""
        d = asdict(self)
        d["stages"] = [dict(s, trainable=list(s["trainable"])) for s in d["stages"]]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Inverse of `to_dict`; unknown keys are errors naming the key."""
        known = {"name", "stages", "grad_clip", "grad_accum", "lora_rank", "lora_alpha"}
        _no_unknown(data, known, "recipe")
        stage_keys = set(Stage.__dataclass_fields__)
        stages = []
        for s in data.get("stages", ()):
            _no_unknown(s, stage_keys, "recipe stage")
            stages.append(Stage(**dict(s, trainable=tuple(s.get("trainable", ())))))
        return cls(**dict(data, stages=tuple(stages)))


def three_stage(
    stage3: Stage3Mode = "full",
    lrs: Sequence[float] = (1e-3, 2e-5, 1e-5),
    shares: Sequence[float] = (0.05, 0.80, 0.15),
    web_ratio: float = 0.5,
    align_web_ratio: float = 0.0,
    **settings: Any,
) -> Recipe:
    """The recipe's three stages.

    Args:
        stage3: ``"full"`` fine-tune, ``"frozen_backbone"``, or ``"lora"``.
        lrs: peak LR of each stage.
        shares: fraction of steps of each stage (1-5%, ~80%, ~15%).
        web_ratio: share of web data in stage 2 batches.
        align_web_ratio: share of web data in stage 1 batches ("robot (+ web)").
        **settings: `Recipe` fields (grad_clip, grad_accum, lora_rank, lora_alpha).

    Returns:
        A `Recipe` named ``"three_stage"``.
    """
    if stage3 not in STAGE3_MODES:
        raise UsageError(f"stage 3 mode must be one of {', '.join(STAGE3_MODES)}, got {stage3!r}")
    if len(lrs) != 3 or len(shares) != 3:
        raise UsageError("three_stage needs three learning rates and three shares")
    stage3_parts = {
        "full": PARTS,
        "frozen_backbone": tuple(p for p in PARTS if p != "backbone"),
        "lora": (),
    }[stage3]
    stages = (
        Stage(
            "align",
            shares[0],
            float(lrs[0]),
            ("projection", "action_head"),
            web_ratio=align_web_ratio,
        ),
        Stage("cofinetune", shares[1], float(lrs[1]), PARTS, web_ratio=web_ratio),
        Stage(
            "specialise",
            shares[2],
            float(lrs[2]),
            stage3_parts,
            lora=stage3 == "lora",
        ),
    )
    return Recipe("three_stage", stages, **settings)


def one_stage(lr: float = 2e-5, web_ratio: float = 0.5, **settings: Any) -> Recipe:
    """The ablation baseline: one stage, everything trainable from step 0."""
    return Recipe(
        "one_stage", (Stage("all", 1.0, float(lr), PARTS, web_ratio=web_ratio),), **settings
    )


def build_recipe(cfg: RecipeConfig) -> Recipe:
    """The `Recipe` (stages, LRs, what trains, data mix) a config asks for."""
    common = {
        "grad_clip": cfg.grad_clip,
        "grad_accum": cfg.grad_accum,
        "lora_rank": cfg.lora_rank,
        "lora_alpha": cfg.lora_alpha,
    }
    if cfg.kind == "one_stage":
        recipe = one_stage(lr=cfg.lr, web_ratio=cfg.web_ratio, **common)
    else:
        recipe = three_stage(
            stage3=cfg.stage3,
            lrs=cfg.lrs,
            shares=cfg.shares,
            web_ratio=cfg.web_ratio,
            align_web_ratio=cfg.align_web_ratio,
            **common,
        )
    stages = tuple(
        replace(
            s,
            warmup_frac=cfg.warmup_frac,
            min_lr_frac=cfg.min_lr_frac,
            weight_decay=cfg.weight_decay,
        )
        for s in recipe.stages
    )
    return replace(recipe, stages=stages)


# --- helpers ------------------------------------------------------------------


def _no_unknown(data: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{what}: unknown key(s) {', '.join(unknown)}")
