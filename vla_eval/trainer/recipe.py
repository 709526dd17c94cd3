"""The training recipe: stages, what each freezes, learning rates and the LR schedule.

The recipe (RECIPE.md, section 2) trains in three stages, each with its own AdamW
optimizer (weight decay 0.01) and a cosine schedule with linear warmup over the first
3% of its steps: 1 alignment (1-5% of steps; projection and action head train, the
vision encoder and backbone stay frozen; LR 1e-3), 2 co-fine-tuning (~80%; the whole
model; LR 2e-5; robot and web data mixed), 3 specialisation (~15%; the whole model,
or the backbone frozen, or LoRA adapters on the backbone; LR 1e-5; target robot data
only). A one-stage recipe (everything trainable from the start) is the ablation
baseline. The decisions live here as frozen dataclasses and small named functions so
that the training loop only calls them. Unlike the lecture notes' schedule, the LR is
never 0 (warm-up starts from a small non-zero LR) and stages shorter than their
warm-up do not divide by zero. Depends on torch (and on peft for LoRA, imported only
when used); it must not depend on the training loop or the data pipeline.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
from torch import nn

from vla_eval.errors import UsageError
from vla_eval.trainer.model import PARTS

Stage3Mode = Literal["full", "frozen_backbone", "lora"]
STAGE3_MODES: tuple[str, ...] = ("full", "frozen_backbone", "lora")
RobotData = Literal["all", "target"]


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
        robot_data: ``"all"`` robot tasks, or ``"target"`` tasks only.
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
    robot_data: RobotData = "all"
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
        if self.robot_data not in ("all", "target"):
            raise UsageError(f"stage {self.name!r}: robot_data must be 'all' or 'target'")
        _check_schedule(self.warmup_frac, self.min_lr_frac)
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
        total = _positive_int(total_steps, "total_steps")
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
            robot_data="target",
        ),
    )
    return Recipe("three_stage", stages, **settings)


def one_stage(lr: float = 2e-5, web_ratio: float = 0.5, **settings: Any) -> Recipe:
    """The ablation baseline: one stage, everything trainable from step 0."""
    return Recipe(
        "one_stage", (Stage("all", 1.0, float(lr), PARTS, web_ratio=web_ratio),), **settings
    )


# --- learning-rate schedule -----------------------------------------------------


def warmup_steps(total: int, warmup_frac: float = 0.03) -> int:
    """Warm-up length: ceil(warmup_frac * total), leaving at least one step at the peak.

    >>> warmup_steps(1000), warmup_steps(100), warmup_steps(1), warmup_steps(10, 0.0)
    (30, 3, 0, 0)
    """
    total = _positive_int(total, "total steps")
    _check_schedule(warmup_frac, 0.5)
    if warmup_frac == 0:
        return 0
    # round() first: 0.03 * 100 is 3.0000000000000004 in floating point.
    return min(math.ceil(round(warmup_frac * total, 9)), total - 1)


def cosine_lr(
    step: int,
    total: int,
    base_lr: float,
    warmup_frac: float = 0.03,
    min_lr_frac: float = 0.1,
) -> float:
    """Learning rate at optimizer step `step` of a stage of `total` steps.

    Linear warm-up over ``w = warmup_steps(total, warmup_frac)`` steps from
    ``base_lr / (w + 1)`` (never 0) to ``base_lr`` at step ``w``, then cosine decay to
    ``base_lr * min_lr_frac`` at the last step ``total - 1``. A stage too short for
    its warm-up gets a shorter one (one step at the peak at least), so nothing
    divides by zero. Steps past the end keep the final LR (schedulers are often
    stepped once more after the last update).

    Args:
        step: 0-based optimizer step within the stage.
        total: steps in the stage, >= 1.
        base_lr: peak learning rate, > 0.
        warmup_frac: fraction of steps in warm-up, in [0, 1).
        min_lr_frac: final LR / peak LR, in (0, 1].

    >>> [round(cosine_lr(s, 5, 1.0, warmup_frac=0.4, min_lr_frac=0.1), 4) for s in range(5)]
    [0.3333, 0.6667, 1.0, 0.55, 0.1]
    """
    total = _positive_int(total, "total steps")
    if not (math.isfinite(base_lr) and base_lr > 0):
        raise UsageError(f"base learning rate must be a positive number, got {base_lr}")
    _check_schedule(warmup_frac, min_lr_frac)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise UsageError(f"step must be an integer >= 0, got {step!r}")
    s = min(step, total - 1)
    w = warmup_steps(total, warmup_frac)
    if s < w:
        return base_lr * (s + 1) / (w + 1)
    decay = max(1, total - 1 - w)
    progress = (s - w) / decay
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_lr_frac + (1.0 - min_lr_frac) * cosine)


class CosineMultiplier:
    """`cosine_lr` as a LambdaLR multiplier; a class (not a lambda) so its state saves plainly."""

    def __init__(self, total: int, warmup_frac: float = 0.03, min_lr_frac: float = 0.1) -> None:
        self.total = _positive_int(total, "total steps")
        _check_schedule(warmup_frac, min_lr_frac)
        self.warmup_frac = float(warmup_frac)
        self.min_lr_frac = float(min_lr_frac)

    def __call__(self, step: int) -> float:
        return cosine_lr(int(step), self.total, 1.0, self.warmup_frac, self.min_lr_frac)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total: int,
    warmup_frac: float = 0.03,
    min_lr_frac: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR following `cosine_lr`; step it once after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, CosineMultiplier(total, warmup_frac, min_lr_frac)
    )


# --- freezing, LoRA and the optimizer ---------------------------------------------


def apply_freezing(model: nn.Module, stage: Stage) -> dict[str, int]:
    """Set ``requires_grad`` by named part for `stage`; return trainable counts per part.

    Every parameter of the model must belong to one of the named parts (otherwise a
    stage could silently train or freeze it). In a LoRA stage only parameters whose
    name contains ``lora_`` train; the adapters must already be present (see
    `prepare_stage`).

    Raises:
        UsageError: a part is missing, a parameter lies outside every part, or a LoRA
            stage finds no adapters.
    """
    missing = [p for p in PARTS if not isinstance(getattr(model, p, None), nn.Module)]
    if missing:
        raise UsageError(f"the model has no part(s) named {', '.join(missing)}")
    outside = [n for n, _ in model.named_parameters() if n.split(".", 1)[0] not in PARTS]
    if outside:
        raise UsageError(
            f"parameters outside the named parts cannot be staged: {', '.join(outside[:3])}"
        )
    counts: dict[str, int] = {}
    for part in PARTS:
        n = 0
        for name, p in getattr(model, part).named_parameters():
            train = ("lora_" in name) if stage.lora else (part in stage.trainable)
            p.requires_grad_(train)
            n += p.numel() if train else 0
        counts[part] = n
    if stage.lora and not any(counts.values()):
        raise UsageError(f"stage {stage.name!r} trains LoRA adapters but the model has none")
    return counts


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> None:
    """Add LoRA adapters to the backbone's linear layers (through peft).

    A model with an ``add_lora`` method (TinyVLA) records the adapters in its config;
    any other model with a ``backbone`` gets peft's ``inject_adapter_in_model`` on all
    of the backbone's ``nn.Linear`` layers.
    """
    if hasattr(model, "add_lora"):
        model.add_lora(rank, alpha, dropout)
        return
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise UsageError(
            "LoRA needs the optional dependency peft: pip install 'vla-eval[lora]'"
        ) from None
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise UsageError("LoRA needs a model with a 'backbone' part")
    targets = sorted(
        {n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)}
    )
    if not targets:
        raise UsageError("the backbone has no linear layers to adapt with LoRA")
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets)
    inject_adapter_in_model(config, backbone)


def has_lora(model: nn.Module) -> bool:
    return any("lora_" in n for n, _ in model.named_parameters())


def prepare_stage(model: nn.Module, stage: Stage, recipe: Recipe | None = None) -> dict[str, int]:
    """Everything a stage changes on the model: LoRA adapters if it needs them, then freezing."""
    if stage.lora and not has_lora(model):
        r = recipe if recipe is not None else Recipe("lora", (replace(stage, share=1.0),))
        apply_lora(model, r.lora_rank, r.lora_alpha)
    return apply_freezing(model, stage)


def build_optimizer(model: nn.Module, stage: Stage) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only; no weight decay on biases, norms, embeddings.

    Decaying only weight matrices follows common transformer practice (GPT-2,
    nanoGPT); frozen parameters are not handed to the optimizer at all, so they carry
    no optimizer state and weight decay cannot move them.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_matrix = p.ndim >= 2 and "emb" not in name and "pos" not in name
        (decay if is_matrix else no_decay).append(p)
    if not decay and not no_decay:
        raise UsageError(f"stage {stage.name!r}: the model has no trainable parameters")
    groups = [
        {"params": decay, "weight_decay": stage.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=stage.lr)


def clip_gradients(parameters: Iterable[torch.Tensor] | nn.Module, max_norm: float = 1.0) -> float:
    """Clip the global gradient norm to `max_norm`; return the norm before clipping.

    A non-finite norm is returned as is (and the gradients are left alone) so that a
    gradient-explosion detector sees it.
    """
    params = parameters.parameters() if isinstance(parameters, nn.Module) else parameters
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    norm = torch.nn.utils.clip_grad_norm_(grads, max_norm, error_if_nonfinite=False)
    return float(norm)


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    max_norm: float = 1.0,
) -> float:
    """Clip, step the optimizer and the schedule, clear gradients; returns the grad norm.

    Skips the update (but still advances the schedule) when the gradient norm is not
    finite, so one NaN batch does not destroy the weights.
    """
    norm = clip_gradients(model, max_norm)
    stepped = math.isfinite(norm)
    if stepped:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        with warnings.catch_warnings():
            if not stepped:
                # The schedule keeps counting optimizer steps, skipped or not; torch's
                # "scheduler before optimizer" warning does not apply.
                warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
    return norm


def is_update_step(micro_step: int, grad_accum: int) -> bool:
    """With gradient accumulation, whether micro-batch `micro_step` (0-based) ends an update.

    Scale each micro-batch loss by ``1 / grad_accum`` before ``backward()``.

    >>> [is_update_step(i, 2) for i in range(4)]
    [False, True, False, True]
    """
    return (micro_step + 1) % grad_accum == 0


# --- helpers ------------------------------------------------------------------


def _check_schedule(warmup_frac: float, min_lr_frac: float) -> None:
    if not (0 <= warmup_frac < 1):
        raise UsageError(f"warmup_frac must lie in [0, 1), got {warmup_frac}")
    if not (0 < min_lr_frac <= 1):
        raise UsageError(f"min_lr_frac must lie in (0, 1] (the LR is never 0), got {min_lr_frac}")


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {v!r}")
    return v


def _no_unknown(data: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{what}: unknown key(s) {', '.join(unknown)}")
