"""The run directory a training run writes: metrics.jsonl, checkpoints/, run.json, findings.json.

`MetricsLog` appends one flushed JSON line per step (non-finite values as the strings
"nan"/"inf"/"-inf", the project's one rule) and, on resume, drops the lines past the
checkpoint so nothing is counted twice; `save_step_checkpoint` writes
``checkpoints/step_NNNNNN.pt`` atomically with the recipe, the run's configuration and
the instruction vocabulary and the Diagnose state; `latest_checkpoint` finds the one to
resume from (by step number); `finished_run` recognises a run that has nothing left to
do; `write_summary` writes run.json and findings.json at the end. Every file but the
appended metrics lines is written through `vla_eval.results.atomic_write`. Depends on torch only
through the checkpoint module; it must not depend on the training loop.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.jsonl import iter_jsonl
from vla_eval.results import atomic_write, dumps, write_json
from vla_eval.trainer import checkpoint as ckpt_io
from vla_eval.trainer.config import TrainConfig

RUN_SCHEMA = "vla-eval/train/1"
FINDINGS_SCHEMA = "vla-eval/findings/1"


class MetricsLog:
    """metrics.jsonl: one flushed JSON line per step; on resume, lines past the
    checkpoint are dropped so nothing is counted twice.

    The file is only ever appended to or replaced whole (`atomic_write`), never
    rewritten in place, so a kill at any moment leaves either the old lines or the new
    ones, at most with a cut-off last line (which the reader skips).

    Args:
        path: the metrics file.
        keep_through: None for a fresh run (the file starts empty), else the step of
            the checkpoint resumed from: lines of steps ``0 .. keep_through - 1`` stay.
            A truncated last line (a crash while writing) is skipped with a warning.
        enabled: False on every process but the main one (nothing is written).

    Attributes:
        last_loss: the loss of the last line kept (None for a fresh run).
        last_heldout: the held-out evaluation of the last line kept that has one.
    """

    def __init__(self, path: Path, keep_through: int | None, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled
        self.last_loss: float | None = None
        self.last_heldout: dict[str, Any] = {}
        if not enabled:
            return
        kept: list[str] = []
        if keep_through is not None and path.exists():
            lines = path.read_text(encoding="utf-8").split("\n")
            for n, rec in iter_jsonl(path):
                if isinstance(rec.get("step"), int) and rec["step"] < keep_through:
                    kept.append(lines[n - 1] + "\n")  # steps 0..keep_through-1 are done
                    self._remember(rec)
        data = "".join(kept).encode("utf-8")
        atomic_write(path, lambda fh: fh.write(data))
        self._fh = open(path, "a", encoding="utf-8")

    def _remember(self, rec: dict[str, Any]) -> None:
        if "loss" in rec:
            self.last_loss = float(rec["loss"])  # "nan"/"inf" strings read back as floats
        if "heldout" in rec:
            self.last_heldout = {k: rec[k] for k in HELDOUT_KEYS if k in rec}

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._fh.write(dumps(record, indent=None) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self.enabled:
            self._fh.close()


#: The fields of a metrics line that hold a held-out evaluation (what `evaluate` returns).
HELDOUT_KEYS = ("heldout_loss", "heldout", "web_loss", "web_accuracy")

_CHECKPOINT_NAME = re.compile(r"step_(\d+)\.pt")


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint with the highest step in ``out_dir/checkpoints`` (by number, not text)."""
    found = [
        (int(m.group(1)), p)
        for p in (out_dir / "checkpoints").glob("step_*.pt")
        if (m := _CHECKPOINT_NAME.fullmatch(p.name)) and p.is_file()
    ]
    return max(found)[1] if found else None


def finished_run(out_dir: Path, steps: int) -> dict[str, Any] | None:
    """run.json and findings.json of a run in `out_dir` that finished all `steps` (else None).

    A run is finished when its last checkpoint is the final one and its summary exists
    (the summary is written after the final checkpoint; a run killed between the two is
    not finished, and resuming it writes the summary).
    """
    latest = latest_checkpoint(out_dir)
    summary, findings = out_dir / "run.json", out_dir / "findings.json"
    if latest is None or latest != checkpoint_path(out_dir, steps):
        return None
    if not (summary.is_file() and findings.is_file()):
        return None
    from vla_eval.errors import DataError
    from vla_eval.inputs import load_json_file

    run, found = load_json_file(summary), load_json_file(findings)
    if not isinstance(run, dict):
        raise DataError(f"{summary}: expected a JSON object")
    if not (isinstance(found, dict) and isinstance(found.get("findings"), list)):
        raise DataError(f"{findings}: expected an object with a 'findings' list")
    return {"run": run, "findings": found["findings"], "checkpoint": latest}


def checkpoint_path(out_dir: Path, step: int) -> Path:
    """Where the checkpoint of optimizer step `step` goes."""
    return out_dir / "checkpoints" / f"step_{step:06d}.pt"


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """The run's configuration as plain JSON data (what checkpoints and run.json hold).

    The tracker is left out: where metrics are also sent changes nothing a run computes,
    so a run resumes under another tracker (and checkpoints from before trackers match).
    """
    from vla_eval.config import to_dict

    data = json.loads(dumps(to_dict(config)))
    data.pop("tracker", None)
    return data


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
    diagnose: dict[str, Any] | None = None,
) -> None:
    """Write the checkpoint of `step`: weights, optimizer and schedule, randomness, recipe,
    and the Diagnose detectors' state (`Diagnose.state_dict`), so a resumed run raises the
    findings an uninterrupted one would."""
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
        extra={"diagnose": diagnose},
    )


def write_summary(out_dir: Path, summary: dict[str, Any], findings: list[dict[str, Any]]) -> None:
    """findings.json and run.json (`summary` without its schema, which is added here)."""
    write_json(out_dir / "findings.json", {"schema": FINDINGS_SCHEMA, "findings": findings})
    write_json(out_dir / "run.json", {"schema": RUN_SCHEMA, **summary})
