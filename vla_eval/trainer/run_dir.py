"""The run directory a training run writes: metrics.jsonl, checkpoints/, run.json, findings.json.

`MetricsLog` appends one flushed JSON line per step (non-finite values as the strings
"nan"/"inf"/"-inf", the project's one rule) and, on resume, drops the lines past the
checkpoint so nothing is counted twice; `save_step_checkpoint` writes
``checkpoints/step_NNNNNN.pt`` atomically with the recipe, the run's configuration and
the instruction vocabulary; `latest_checkpoint` finds the one to resume from;
`write_summary` writes run.json and findings.json at the end. Depends on torch only
through the checkpoint module; it must not depend on the training loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.jsonl import iter_jsonl
from vla_eval.results import dumps, write_json
from vla_eval.trainer import checkpoint as ckpt_io
from vla_eval.trainer.config import TrainConfig

RUN_SCHEMA = "vla-eval/train/1"
FINDINGS_SCHEMA = "vla-eval/findings/1"


class MetricsLog:
    """metrics.jsonl: one flushed JSON line per step; on resume, lines past the
    checkpoint are dropped so nothing is counted twice.

    Args:
        path: the metrics file.
        keep_through: None for a fresh run (the file starts empty), else the step of
            the checkpoint resumed from: lines of steps ``0 .. keep_through - 1`` stay.
            A truncated last line (a crash while writing) is skipped with a warning.
        enabled: False on every process but the main one (nothing is written).
    """

    def __init__(self, path: Path, keep_through: int | None, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        if keep_through is None:
            path.write_text("")
        elif path.exists():
            lines = path.read_text().split("\n")
            kept = [
                lines[n - 1] + "\n"
                for n, rec in iter_jsonl(path)
                if rec.get("step", -1) < keep_through  # steps 0..keep_through-1 are done
            ]
            path.write_text("".join(kept))
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._fh.write(dumps(record, indent=None) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self.enabled:
            self._fh.close()


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint with the highest step in ``out_dir/checkpoints``."""
    found = sorted((out_dir / "checkpoints").glob("step_*.pt"))
    return found[-1] if found else None


def checkpoint_path(out_dir: Path, step: int) -> Path:
    """Where the checkpoint of optimizer step `step` goes."""
    return out_dir / "checkpoints" / f"step_{step:06d}.pt"


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """The run's configuration as plain JSON data (what checkpoints and run.json hold)."""
    from vla_eval.config import to_dict

    return json.loads(dumps(to_dict(config)))


def save_step_checkpoint(
    out_dir: Path,
    step: int,
    stage: str,
    *,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    recipe: Any,
    config: TrainConfig,
    rng: np.random.Generator,
    vocab: np.ndarray,
) -> None:
    """Write the checkpoint of `step`: weights, optimizer and schedule, randomness, recipe."""
    recipe_dict = recipe.to_dict()
    recipe_dict["train_config"] = config_dict(config)
    recipe_dict["text_vocab"] = [str(w) for w in vocab]  # the instruction tokenizer's words
    ckpt_io.save_checkpoint(
        checkpoint_path(out_dir, step),
        model=model,
        tokenizer=tokenizer,
        step=step,
        stage=stage,
        optimizer=optimizer,
        scheduler=scheduler,
        recipe=recipe_dict,
        rng=ckpt_io.capture_rng(rng),
    )


def write_summary(out_dir: Path, summary: dict[str, Any], findings: list[dict[str, Any]]) -> None:
    """findings.json and run.json (`summary` without its schema, which is added here)."""
    write_json(out_dir / "findings.json", {"schema": FINDINGS_SCHEMA, "findings": findings})
    write_json(out_dir / "run.json", {"schema": RUN_SCHEMA, **summary})
