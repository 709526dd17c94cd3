"""What a stage changes on the model and how one optimizer step runs.

`prepare_stage` adds LoRA adapters when a stage needs them and sets ``requires_grad``
by named part (`apply_freezing`); `build_optimizer` builds the stage's AdamW over the
trainable parameters only (weight decay on weight matrices); `optimizer_step` clips
the global gradient norm at the recipe's 1.0, steps the optimizer and the schedule
and clears the gradients, skipping the update (not the schedule) on a non-finite
norm. Depends on torch, the model's named parts and its LoRA helper; it must
not depend on the training loop or the data pipeline.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import replace

import torch
from torch import nn

from vla_eval.errors import UsageError
from vla_eval.trainer.model import PARTS, add_lora, has_lora
from vla_eval.trainer.recipe import Recipe, Stage


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


def prepare_stage(model: nn.Module, stage: Stage, recipe: Recipe | None = None) -> dict[str, int]:
    """Everything a stage changes on the model: LoRA adapters if it needs them, then freezing."""
    if stage.lora and not has_lora(model):
        r = recipe if recipe is not None else Recipe("lora", (replace(stage, share=1.0),))
        add_lora(model, r.lora_rank, r.lora_alpha)
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
    inspect: Callable[[float], object] | None = None,
) -> float:
    """Clip, step the optimizer and the schedule, clear gradients; returns the grad norm.

    Skips the update (but still advances the schedule) when the gradient norm is not
    finite, so one NaN batch does not destroy the weights.

    Args:
        inspect: called with the norm before clipping, after clipping and before the
            update, while the gradients still exist (Diagnose reads them there to name
            a parameter whose gradient is not finite).
    """
    norm = clip_gradients(model, max_norm)
    if inspect is not None:
        inspect(norm)
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
