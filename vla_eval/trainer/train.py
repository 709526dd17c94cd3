"""The reference trainer: `train(config, callbacks) -> TrainResult`, top to bottom.

One short loop runs the recipe (RECIPE.md): build the data (expert demonstrations,
quality-filtered, plus web-style VQA), then for each stage set what trains
(`prepare_stage`), build its own AdamW and cosine schedule, and step through its
share of the run: a robot batch drawn by temperature sampling (plus a web batch in the
stage's mix ratio), augmentation, the loss, then `optimizer_step`: gradient clipping
at 1.0, the Diagnose detectors (while the gradients still exist, so a non-finite one
can be named), the update and the schedule. Metrics go to
``metrics.jsonl`` (one line per step, the schema in docs/diagnose.md), checkpoints are
written atomically every ``checkpoint_every`` steps, at the end of every stage and at
the end, and ``resume=True`` continues from the last checkpoint with the same losses
as an uninterrupted run (Diagnose findings included: the detectors' state is in the
checkpoint). The run directory is locked while a run writes it, so a second run on the
same folder is refused at once; resuming a finished run changes nothing. A tracker named
in the config (`[train.tracker]`) also receives every metrics line and each Diagnose
finding at its step (`tracking`). Under ``torchrun`` the processes split each batch (data
parallel over gloo on the CPU) and average their gradients.

`set_up` (module `setup`) builds the run or resumes it; the decisions of the recipe
live in named helpers in their own modules (`build_recipe`, `robot_batch`,
`web_batch`, `evaluate`, `optimizer_step`), not in flags inside the loop. The trainer
imports no evaluation module but the numpy offline metrics (through `evaluate`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_eval.errors import UsageError
from vla_eval.locking import output_lock
from vla_eval.results import clean_leftovers, finite_or_text
from vla_eval.trainer import checkpoint as ckpt_io
from vla_eval.trainer.batches import robot_batch, web_batch
from vla_eval.trainer.config import TrainConfig
from vla_eval.trainer.distributed import average_gradients, init_distributed
from vla_eval.trainer.evaluate import evaluate
from vla_eval.trainer.losses import action_loss, per_task_losses, web_loss
from vla_eval.trainer.optim import build_optimizer, optimizer_step, prepare_stage
from vla_eval.trainer.recipe import Recipe, Stage
from vla_eval.trainer.run_dir import (
    checkpoint_path,
    config_dict,
    finished_run,
    save_step_checkpoint,
    write_summary,
)
from vla_eval.trainer.schedule import build_scheduler
from vla_eval.trainer.setup import Run, set_up

METRICS_SCHEMA = "vla-eval/metrics/1"


@dataclass
class TrainResult:
    """What a run produced."""

    out_dir: Path
    checkpoint: Path
    steps: int
    final_loss: float | None
    heldout: dict[str, Any]
    findings: list[dict[str, Any]]
    seconds: float
    already_finished: bool = False


class Callback:
    """Hooks into `train`; override what you need (all are optional)."""

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        """After each optimizer step, with the metrics line just written."""

    def on_evaluate(self, step: int, metrics: dict[str, Any]) -> None:
        """After each held-out evaluation."""

    def on_finding(self, finding: Any) -> None:
        """Each Diagnose finding (a `Finding`), as it is raised, before its step's metrics."""

    def on_end(self, result: TrainResult) -> None:
        """Once, after the final checkpoint."""


# --- the loop ---------------------------------------------------------------------------


def train(
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    *,
    out_dir: str | os.PathLike[str] = "runs/run",
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train TinyVLA with the recipe; write metrics, checkpoints and a run report.

    Args:
        config: the run.
        callbacks: objects with `Callback`'s hooks.
        out_dir: run directory: metrics.jsonl, checkpoints/, run.json, findings.json.
        resume: continue from the latest checkpoint in `out_dir`.
        progress: show a tqdm bar on stderr.

    Returns:
        A `TrainResult` (final checkpoint, held-out metrics, Diagnose findings). Resuming
        a finished run changes nothing and returns its result with ``already_finished``.

    Raises:
        UsageError: another process is writing `out_dir` (its pid is named), or the
            folder holds a run of another configuration.
    """
    out = Path(out_dir)
    dist = init_distributed()
    with output_lock(out, "run directory", directory=True) if dist.main else nullcontext():
        if dist.main:
            clean_leftovers(out)
            clean_leftovers(out / "checkpoints")
        done = finished_run(out, config.steps) if resume else None
        if done is not None:
            return _finished(out, config, done)
        run = set_up(config, out, resume, progress, callbacks)
        # the tracker is closed as failed if the run raises; `on_end` closes it otherwise
        with run.tracker if run.tracker is not None else nullcontext():
            return _train(run)


def _train(run: Run) -> TrainResult:
    """The loop over the stages and their steps, from `run.start_step` to the end."""
    config = run.config
    step = run.start_step
    for stage, start, end in _stage_spans(run.recipe, config.steps):
        if step >= end:
            continue  # finished before the checkpoint this run resumes from
        optimizer, scheduler = _begin_stage(run, stage, start, end, step)
        while step < end:
            record = {"step": step, "stage": stage.name, "lr": optimizer.param_groups[0]["lr"]}
            out = _forward_backward(run, stage, step / config.steps)
            average_gradients(run.model, run.dist)
            grad_norm = optimizer_step(
                run.model,
                optimizer,
                scheduler,
                run.recipe.grad_clip,
                inspect=partial(_diagnose_step, run, step, out, lr=record["lr"]),
            )
            step += 1
            record.update(out.metrics(grad_norm))
            run.last_loss = out.loss
            if _due(config.eval_every, step, config.steps):
                _evaluate(run, step, record)
            _log_step(run, step, record, stage)
            if run.dist.main and (_due(config.checkpoint_every, step, config.steps) or step == end):
                _save(run, step, stage, optimizer, scheduler)
    return _finish(run)


# --- stages -----------------------------------------------------------------------------


def _stage_spans(recipe: Recipe, total: int) -> list[tuple[Stage, int, int]]:
    """(stage, first step, end step) of every stage of a run of `total` steps."""
    spans, start = [], 0
    for stage, n_steps in zip(recipe.stages, recipe.stage_steps(total), strict=True):
        spans.append((stage, start, start + n_steps))
        start += n_steps
    return spans


def _begin_stage(run: Run, stage: Stage, start: int, end: int, step: int) -> tuple[Any, Any]:
    """Set what trains, build the stage's AdamW and schedule, restore them when resuming."""
    prepare_stage(run.model, stage, run.recipe)
    optimizer = build_optimizer(run.model, stage)
    scheduler = build_scheduler(optimizer, end - start, stage.warmup_frac, stage.min_lr_frac)
    if run.state is not None and step > start:  # resuming inside this stage
        ckpt_io.restore_training_state(run.state, optimizer, scheduler, run.rng)
    elif run.state is not None:  # resuming at a stage boundary: only the randomness
        ckpt_io.restore_rng(run.state["rng"], run.rng)
    run.state = None
    if run.diag is not None and step == start:  # a resumed Diagnose already knows its stage
        trainable = ("lora",) if stage.lora else stage.trainable
        run.diag.new_stage(
            stage.name, lr=stage.lr, trainable=list(trainable), web_ratio=stage.web_ratio
        )
    return optimizer, scheduler


# --- one step ---------------------------------------------------------------------------


@dataclass
class _StepOutput:
    """The losses of one optimizer step and the last micro-batch's predictions."""

    loss: float
    robot_loss: float
    web_loss: float | None
    task_loss: dict[str, list[float]]
    logits: torch.Tensor  # (B, H, D, n_bins) of the last robot micro-batch, detached
    bins: torch.Tensor  # its target bins
    tasks: np.ndarray  # its task names

    def metrics(self, grad_norm: float) -> dict[str, Any]:
        """The step's fields of the metrics line."""
        tasks = sorted(self.task_loss.items())
        return {
            "loss": finite_or_text(self.loss),
            "robot_loss": finite_or_text(self.robot_loss),
            "train_web_loss": self.web_loss,
            "grad_norm": finite_or_text(grad_norm),
            "loss_per_task": {k: float(np.mean(v)) for k, v in tasks},
            "samples_per_task": {k: len(v) for k, v in tasks},
        }


def _forward_backward(run: Run, stage: Stage, progress: float) -> _StepOutput:
    """Losses and gradients of one optimizer step (``grad_accum`` micro-batches)."""
    cfg, accum = run.config, run.recipe.grad_accum
    n_web = round(cfg.batch_size * stage.web_ratio)
    n_robot, n_web = (cfg.batch_size - n_web) // run.dist.world, n_web // run.dist.world
    loss_sum = torch.zeros(())
    task_loss: dict[str, list[float]] = {}
    web_value = None
    for _ in range(accum):
        index = run.sampler.sample(n_robot, run.rng, progress)
        rb = robot_batch(run.data, index, cfg, run.rng, run.tokenizer)
        out_r = run.model(rb["images"], rb["text"], rb["state"])
        r_loss = action_loss(
            out_r.action_logits, rb["bins"], rb["mask"], rb["weights"],
            regression_weight=cfg.action_regression,
        )  # fmt: skip
        loss = r_loss * (n_robot / (n_robot + n_web))
        if n_web:
            wb = web_batch(run.data, n_web, run.rng, cfg.model.state_dim)
            out_w = run.model(wb["images"], wb["text"], wb["state"])
            w_loss = web_loss(out_w.answer_logits, wb["answers"])
            loss = loss + w_loss * (n_web / (n_robot + n_web))
            web_value = float(w_loss.detach())
        (loss / accum).backward()
        loss_sum += loss.detach() / accum
        per_task_losses(out_r.action_logits.detach(), rb, task_loss)
    return _StepOutput(
        float(loss_sum), float(r_loss.detach()), web_value, task_loss,
        out_r.action_logits.detach(), rb["bins"], run.task_names[index],
    )  # fmt: skip


def _diagnose_step(run: Run, step: int, out: _StepOutput, grad_norm: float, lr: float) -> None:
    """Feed the step's signals to the Diagnose detectors; print what they find.

    The gradient norm is the one measured before clipping (a non-finite one skipped
    the update: the detectors flag it).
    """
    if run.diag is None:
        return
    findings = run.diag.step(
        step,
        loss=out.robot_loss,  # the robot loss: overfitting compares it with the held-out loss
        grad_norm=grad_norm,
        pred_actions=out.logits,
        target_actions=out.bins,
        task=out.tasks,
        lr=lr,
        loss_per_task={k: float(np.mean(v)) for k, v in out.task_loss.items()},
        samples_per_task={k: len(v) for k, v in out.task_loss.items()},
    )
    _report_findings(run, findings)


# --- evaluation, logging, checkpoints ---------------------------------------------------


def _due(every: int, step: int, total: int) -> bool:
    """Whether something done every `every` steps (0: only at the end) is due after `step`."""
    return bool(every and step % every == 0) or step == total


def _evaluate(run: Run, step: int, record: dict[str, Any]) -> None:
    """Held-out evaluation after `step` optimizer steps, logged on `record`."""
    heldout = evaluate(run.model, run.data, run.tokenizer)
    web_examples = len(run.data.web_heldout)  # the accuracy's sampling noise
    record.update(
        heldout_loss=heldout["heldout_loss"],
        web_loss=heldout["web_loss"],
        web_accuracy=heldout["web_accuracy"],
        web_examples=web_examples,
        heldout=heldout["heldout"],
    )
    if run.diag is not None:
        findings = run.diag.evaluate(
            record["step"],  # the step of the metrics line it is logged on
            heldout_loss=heldout["heldout_loss"],
            web_loss=heldout["web_loss"],
            web_accuracy=heldout["web_accuracy"],
            web_examples=web_examples,
        )
        _report_findings(run, findings)
    for cb in run.callbacks:
        cb.on_evaluate(step, heldout)
    run.heldout = heldout


def _report_findings(run: Run, findings: Sequence[Any]) -> None:
    """Print each finding (main process) and hand it to the callbacks that take findings."""
    from tqdm import tqdm

    for finding in findings:
        if run.dist.main:
            tqdm.write(str(finding), file=sys.stderr)
        for cb in run.callbacks:
            hook = getattr(cb, "on_finding", None)  # callbacks written before this hook lack it
            if hook is not None:
                hook(finding)


def _log_step(run: Run, step: int, record: dict[str, Any], stage: Stage) -> None:
    """Write the metrics line, call the callbacks, advance the progress bar."""
    run.log.write(record)
    for cb in run.callbacks:
        cb.on_step(step, record)
    run.bar.update(1)
    if run.config.log_every and step % run.config.log_every == 0:
        run.bar.set_postfix(loss=f"{run.last_loss:.3f}", stage=stage.name, refresh=False)


def _save(run: Run, step: int, stage: Stage, optimizer: Any, scheduler: Any) -> None:
    save_step_checkpoint(
        run.out,
        step,
        stage.name,
        model=run.model,
        tokenizer=run.tokenizer,
        optimizer=optimizer,
        scheduler=scheduler,
        recipe=run.recipe,
        config=run.config,
        rng=run.rng,
        vocab=run.data.robot.vocab,
        diagnose=run.diag.state_dict() if run.diag is not None else None,
    )


def _finished(out: Path, config: TrainConfig, done: dict[str, Any]) -> TrainResult:
    """The result of a run that had already finished (nothing is written)."""
    summary = done["run"]
    if summary.get("config") != config_dict(config):
        raise UsageError(f"{out} holds a finished run of a different configuration")
    loss = summary.get("final_loss")
    return TrainResult(
        out, done["checkpoint"], config.steps, None if loss is None else float(loss),
        summary.get("heldout") or {}, done["findings"], 0.0, already_finished=True,
    )  # fmt: skip


def _finish(run: Run) -> TrainResult:
    """Close the logs, write run.json and findings.json, call `on_end`."""
    run.bar.close()
    run.log.close()
    config, data = run.config, run.data
    findings = [f.to_dict() for f in run.diag.findings] if run.diag is not None else []
    final = checkpoint_path(run.out, config.steps)
    result = TrainResult(
        run.out, final, config.steps, run.last_loss, run.heldout, findings,
        time.time() - run.started,
    )  # fmt: skip
    if run.dist.main:
        summary = {
            "name": config.name,
            "config": config_dict(config),
            "steps": config.steps,
            "final_loss": run.last_loss,
            "heldout": run.heldout,
            "filter": data.filter_report,
            "robot_samples": len(data.robot),
            "task_counts": data.robot.task_counts(),
            "findings": len(findings),
            "seconds": result.seconds,
            "checkpoint": str(final.name),
        }
        write_summary(run.out, summary, findings)
    for cb in run.callbacks:
        cb.on_end(result)
    return result
