"""Held-out evaluation during training: `evaluate(model, data, tokenizer)`.

Runs the model over the clean held-out demonstrations of every split and the
held-out web VQA set and returns the numbers the training loop logs (held-out action
loss, bin accuracy, within-2 accuracy and L1 per split; web loss and accuracy). The
forward passes are the one loop in `vla_eval.trainer.forward`, the same that
`vla-eval offline` runs on checkpoints. It depends on torch, the model, the action
tokenizer and the numpy offline metrics; it must not import any other evaluation
module (online, report, experiment, cli).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vla_eval.actions import ActionTokenizer
from vla_eval.envs.base import FAMILIES
from vla_eval.trainer.forward import forward_metrics, merged
from vla_eval.trainer.model import TinyVLA

if TYPE_CHECKING:
    from vla_eval.trainer.batches import TrainingData


def evaluate(
    model: TinyVLA, data: TrainingData, tokenizer: ActionTokenizer, batch_size: int = 256
) -> dict[str, Any]:
    """Held-out action loss / bin accuracy / L1 per split, and held-out web loss/accuracy."""
    state_dim = model.config.state_dim
    parts = [
        (
            split,
            {
                "images": ds.images,
                "tokens": ds.tokens,
                "states": ds.states if state_dim else None,
                "actions": ds.actions,
                "mask": ds.mask,
                "task": np.asarray(FAMILIES, dtype=object)[ds.task],
            },
        )
        for split, ds in data.heldout.items()
    ]
    web = data.web_heldout
    web_arrays = {"images": web.images, "questions": web.questions, "answers": web.answers}
    per_split, web_metrics = forward_metrics(
        model, tokenizer, parts, web_arrays, batch_size=batch_size
    )
    result = merged(per_split, web_metrics).compute()
    return {
        "heldout_loss": result["per_split"].get("seen", result["overall"])["loss"],
        "heldout": {
            s: {k: v[k] for k in ("loss", "accuracy", "within_2", "l1")}
            for s, v in result["per_split"].items()
        },
        "web_loss": result["web"]["loss"],
        "web_accuracy": result["web"]["accuracy"],
    }
