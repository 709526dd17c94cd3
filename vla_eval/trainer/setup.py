"""Setting up a training run: processes, resume, randomness, data, model, sampler, logs.

`set_up` gathers everything the loop in `train` holds into one `Run`: it joins the
torchrun processes, checks and loads the checkpoint to resume from (`resume_state`:
never over an existing run, never from another configuration; the Diagnose state and
the last loss and held-out numbers come back too), starts the experiment tracker the
config names (before any data is built), seeds the one numpy
generator and torch, builds the data, the model (with LoRA adapters when the
checkpoint has them), the recipe, the task sampler, the Diagnose detectors, the
metrics log and the progress bar. Depends on torch and the trainer's building
blocks; it must not depend on the training loop or on any evaluation module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vla_eval.actions import ActionTokenizer
from vla_eval.envs.base import FAMILIES
from vla_eval.errors import UsageError
from vla_eval.trainer import checkpoint as ckpt_io
from vla_eval.trainer.batches import TrainingData, build_data
from vla_eval.trainer.config import TrainConfig
from vla_eval.trainer.distributed import Dist, init_distributed
from vla_eval.trainer.model import TinyVLA
from vla_eval.trainer.recipe import Recipe, build_recipe
from vla_eval.trainer.run_dir import MetricsLog, config_dict, latest_checkpoint
from vla_eval.trainer.sampling import Curriculum, TaskBalancedSampler
from vla_eval.trainer.tracking import TrackerCallback, open_run_tracker

if TYPE_CHECKING:
    from vla_eval.trackers import Tracker
    from vla_eval.trainer.train import Callback


@dataclass
class Run:
    """Everything a run holds while it trains."""

    config: TrainConfig
    out: Path
    dist: Dist
    callbacks: Sequence[Callback]
    state: dict[str, Any] | None  # the checkpoint resumed from, until its stage restores it
    start_step: int
    rng: np.random.Generator
    tokenizer: ActionTokenizer
    data: TrainingData
    model: TinyVLA
    recipe: Recipe
    sampler: TaskBalancedSampler
    task_names: np.ndarray
    diag: Any
    log: MetricsLog
    bar: Any
    started: float
    last_loss: float | None = None
    heldout: dict[str, Any] = field(default_factory=dict)
    tracker: Tracker | None = None  # the experiment tracker, if the config names one


def set_up(
    config: TrainConfig, out: Path, resume: bool, progress: bool, callbacks: Sequence[Callback]
) -> Run:
    """Processes, the checkpoint to resume from, the tracker, randomness, data, model,
    sampler, logs.

    The tracker is started right after the resume checks and before any data is built,
    so a missing tracker library or an unreachable server stops the run at once.
    """
    started = time.time()
    dist = init_distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.batch_size % dist.world:
        raise UsageError(f"batch_size {config.batch_size} must divide by {dist.world} processes")
    state = resume_state(config, out, resume)
    start_step = int(state["step"]) if state else 0
    tracker = None
    if dist.main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        tracker = open_run_tracker(config, out, start_step if state else None)
    if tracker is None:
        return _build(config, out, progress, callbacks, state, start_step, dist, started)
    try:
        run = _build(
            config, out, progress, [*callbacks, TrackerCallback(tracker)], state, start_step,
            dist, started,
        )  # fmt: skip
    except BaseException:
        tracker.close("failed")
        raise
    run.tracker = tracker
    return run


def _build(
    config: TrainConfig,
    out: Path,
    progress: bool,
    callbacks: Sequence[Callback],
    state: dict[str, Any] | None,
    start_step: int,
    dist: Dist,
    started: float,
) -> Run:
    """Randomness, data, model, sampler, Diagnose (restored when resuming), logs."""
    from tqdm import tqdm

    # Randomness: one generator for data order and augmentation, one for torch.
    rng = np.random.default_rng([config.seed, dist.rank])
    torch.manual_seed(config.seed)

    tokenizer = ActionTokenizer(n_bins=config.model.n_bins)
    data = build_data(config, tokenizer, progress and dist.main)
    model = build_model(config, state)
    task_names = np.asarray(FAMILIES)[data.robot.task]
    diag = make_diagnose(model, data, config) if config.diagnose else None
    if diag is not None and state is not None and state.get("diagnose") is not None:
        diag.load_state_dict(state["diagnose"])  # findings as if never interrupted
    log = MetricsLog(out / "metrics.jsonl", start_step if state else None, dist.main)
    bar = tqdm(
        total=config.steps,
        initial=start_step,
        desc=f"train {config.name}",
        unit="step",
        disable=not (progress and dist.main),
        file=sys.stderr,
    )
    return Run(
        config, out, dist, callbacks, state, start_step, rng, tokenizer, data, model,
        recipe=build_recipe(config.recipe),
        sampler=build_sampler(config, task_names),
        task_names=task_names,
        diag=diag,
        log=log,
        bar=bar,
        started=started,
        last_loss=log.last_loss,
        heldout=log.last_heldout,
    )  # fmt: skip


def resume_state(config: TrainConfig, out: Path, resume: bool) -> dict[str, Any] | None:
    """The latest checkpoint when resuming (None for a fresh run), after the safety checks.

    Only a complete checkpoint counts (a temporary file left by a kill does not): a run
    killed before its first checkpoint is started again from step 0, with or without
    ``resume``.
    """
    latest = latest_checkpoint(out)
    if resume and latest is None:
        if not (out / "metrics.jsonl").exists():
            raise UsageError(f"nothing to resume in {out}: no checkpoints/step_*.pt")
        print(
            f"vla-eval: {out} has no checkpoint yet (stopped before the first); "
            "starting from step 0",
            file=sys.stderr,
        )
    if not resume and latest is not None:
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose --out")
    resume_from = latest if resume else None
    state = ckpt_io.load_checkpoint(resume_from) if resume_from else None
    if state is not None and state["recipe"].get("train_config") != config_dict(config):
        raise UsageError(f"{resume_from} was written by a different configuration; not resuming")
    return state


def build_model(config: TrainConfig, state: dict[str, Any] | None) -> TinyVLA:
    """A fresh TinyVLA, or the one in the checkpoint resumed from, in training mode."""
    model = TinyVLA(config.model)
    if state is not None and state["model_config"].get("lora_rank"):
        model = TinyVLA(state["model_config"])  # the adapters exist in the saved weights
    if state is not None:
        model.load_state_dict(state["model"])
    return model.train()


def build_sampler(config: TrainConfig, task_names: np.ndarray) -> TaskBalancedSampler:
    """Temperature sampling over the robot examples' tasks, with the curriculum if any."""
    s = config.sampling
    curriculum = Curriculum.staged(s.curriculum) if s.curriculum else None
    return TaskBalancedSampler(task_names, s.temperature, curriculum, s.stratified)


def make_diagnose(model: TinyVLA, data: TrainingData, config: TrainConfig) -> Any:
    """Diagnose with what the loop already does (clipping, sampling temperature), so its
    fixes say what to change relative to that; each stage announces itself (`new_stage`)."""
    from vla_eval.diagnose import CROSS_ENTROPY_THRESHOLDS, Diagnose

    return Diagnose(
        model,
        task_counts={k: v for k, v in data.robot.task_counts().items() if v},
        thresholds=CROSS_ENTROPY_THRESHOLDS,  # per-task errors here are cross-entropies
        clip=config.recipe.grad_clip or None,  # 0 turns clipping off
        temperature=config.sampling.temperature,
    )
