"""The reference trainer: `train(config, callbacks) -> TrainResult`, top to bottom.

One readable function runs the recipe (RECIPE.md): build the data (expert
demonstrations, quality-filtered, plus web-style VQA), then for each stage set what
trains (`prepare_stage`), build its own AdamW and cosine schedule, and step through
its share of the run: a robot batch drawn by temperature sampling (plus a web batch
in the stage's mix ratio), augmentation, the loss, gradient clipping at 1.0, the
Diagnose detectors, an optimizer step. Metrics go to ``metrics.jsonl`` (one line per
step, the schema in docs/diagnose.md), checkpoints are written atomically every
``checkpoint_every`` steps and at the end, and ``resume=True`` continues from the
last checkpoint with the same losses as an uninterrupted run. Under ``torchrun`` the
processes split each batch (data parallel over gloo on the CPU) and average their
gradients.

The decisions of the recipe live in named helpers (`build_recipe`, `robot_batch`,
`web_batch`, `evaluate`), not in flags inside the loop.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from vla_eval.actions import ActionTokenizer
from vla_eval.envs.base import FAMILIES, SPLITS
from vla_eval.errors import UsageError
from vla_eval.results import dumps, write_json
from vla_eval.trainer import checkpoint as ckpt_io
from vla_eval.trainer import data as data_mod
from vla_eval.trainer import recipe as recipe_mod
from vla_eval.trainer.model import TinyVLA, TinyVLAConfig, action_loss, web_loss
from vla_eval.trainer.sampling import Curriculum, TaskBalancedSampler, example_loss_weights

METRICS_SCHEMA = "vla-eval/metrics/1"
RUN_SCHEMA = "vla-eval/train/1"


# --- configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Demonstrations and web data the run trains on.

    Attributes:
        counts: expert demonstrations per task family (the recipe's imbalance,
            scaled down).
        noise, idle, failed, jerky: demonstration defects (see `DemoQuality`).
        filter: drop failed, too short/long, idle and jerky demonstrations.
        heldout_per_task: clean held-out demonstrations per task and split.
        web_examples: web VQA examples for training (and a quarter as many held out).
        seed: base seed of demonstrations and web data.
    """

    counts: dict[str, int] = field(
        default_factory=lambda: {"pick": 500, "place": 300, "stack": 100, "pour": 60}
    )
    noise: float = 0.0
    idle: float = 0.0
    failed: float = 0.0
    jerky: float = 0.0
    filter: bool = True
    heldout_per_task: int = 20
    web_examples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.counts) - set(FAMILIES))
        if unknown:
            raise UsageError(f"unknown task(s) in counts: {', '.join(unknown)}")
        if any(n < 0 for n in self.counts.values()) or not any(self.counts.values()):
            raise UsageError("counts must be non-negative with at least one demonstration")


@dataclass(frozen=True)
class SamplingConfig:
    """How robot batches are drawn: temperature sampling, loss weights, curriculum.

    Attributes:
        temperature: p(task) ∝ n^(1/T); 1 = the data ratio, inf = uniform over tasks.
        loss_weighting: weight each example's loss by 1/n_task (normalised).
        curriculum: task sets that grow with progress, e.g.
            [["pick", "place"], ["stack"], ["pour"]]: each phase adds tasks, the phases
            split the run evenly. Empty: every task from the start.
        stratified: fix each batch's task counts (systematic sampling).
    """

    temperature: float = 1.0
    loss_weighting: bool = False
    curriculum: tuple[tuple[str, ...], ...] = ()
    stratified: bool = True

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise UsageError(f"temperature must be positive (or inf), got {self.temperature}")


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of robot batches (RECIPE.md: crops, colour jitter, action noise)."""

    shift: int = 2
    brightness: float = 0.1
    contrast: float = 0.1
    action_noise: float = 0.0


@dataclass(frozen=True)
class RecipeConfig:
    """The training schedule (RECIPE.md section 2).

    Attributes:
        kind: ``three_stage`` (alignment, co-fine-tuning, specialisation) or
            ``one_stage`` (everything trainable from the start: the ablation baseline).
        lrs: peak LR per stage (three_stage). The recipe's 1e-3 / 2e-5 / 1e-5 suit a
            pretrained VLM; a model trained from scratch on the CPU needs larger ones.
        shares: fraction of steps per stage (three_stage).
        lr: peak LR of the one stage (one_stage).
        web_ratio: share of web data in co-fine-tuning (and one-stage) batches.
        align_web_ratio: share of web data in alignment batches.
        stage3: ``full``, ``frozen_backbone`` or ``lora`` (needs the `lora` extra).
        grad_clip: gradient-norm clip (1.0).
        grad_accum: micro-batches per optimizer step.
        warmup_frac: linear warm-up share of each stage (3%).
        min_lr_frac: end of the cosine, as a fraction of the peak.
        weight_decay: AdamW weight decay (0.01).
        lora_rank, lora_alpha: LoRA adapters of a ``lora`` stage 3.
    """

    kind: Literal["three_stage", "one_stage"] = "three_stage"
    lrs: tuple[float, float, float] = (1e-3, 2e-5, 1e-5)
    shares: tuple[float, float, float] = (0.05, 0.80, 0.15)
    lr: float = 2e-5
    web_ratio: float = 0.2
    align_web_ratio: float = 0.0
    stage3: Literal["full", "frozen_backbone", "lora"] = "full"
    grad_clip: float = 1.0
    grad_accum: int = 1
    warmup_frac: float = 0.03
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    lora_rank: int = 8
    lora_alpha: float = 16.0


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        name: run name (used as the policy name in evaluations).
        seed: seed of sampling, augmentation and initialisation.
        steps: optimizer steps in all.
        batch_size: robot + web examples per optimizer step (all processes together).
        log_every: print a progress line every this many steps (metrics are written
            every step).
        eval_every: held-out evaluation every this many steps (0: only at the end).
        checkpoint_every: checkpoint every this many steps (0: only at the end).
        diagnose: run the Diagnose detectors and record their findings.
        threads: torch CPU threads per process (0: torch's default).
        action_regression: weight of the expected-bin squared error added to the
            action cross-entropy (see `action_loss`); 0 trains plain cross-entropy.
    """

    name: str = "run"
    seed: int = 0
    steps: int = 1000
    batch_size: int = 64
    log_every: int = 50
    eval_every: int = 250
    checkpoint_every: int = 250
    diagnose: bool = True
    threads: int = 0
    action_regression: float = 0.0
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    model: TinyVLAConfig = field(default_factory=TinyVLAConfig)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("log_every", "eval_every", "checkpoint_every", "threads"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.action_regression) and self.action_regression >= 0):
            raise UsageError(
                f"action_regression must be a finite number >= 0, got {self.action_regression}"
            )


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


class Callback:
    """Hooks into `train`; override what you need (all are optional)."""

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        """After each optimizer step, with the metrics line just written."""

    def on_evaluate(self, step: int, metrics: dict[str, Any]) -> None:
        """After each held-out evaluation."""

    def on_end(self, result: TrainResult) -> None:
        """Once, after the final checkpoint."""


# --- the recipe's decisions ---------------------------------------------------------


def build_recipe(cfg: RecipeConfig) -> recipe_mod.Recipe:
    """The `Recipe` (stages, LRs, what trains, data mix) a config asks for."""
    common = {
        "grad_clip": cfg.grad_clip,
        "grad_accum": cfg.grad_accum,
        "lora_rank": cfg.lora_rank,
        "lora_alpha": cfg.lora_alpha,
    }
    if cfg.kind == "one_stage":
        recipe = recipe_mod.one_stage(lr=cfg.lr, web_ratio=cfg.web_ratio, **common)
    else:
        recipe = recipe_mod.three_stage(
            stage3=cfg.stage3,
            lrs=cfg.lrs,
            shares=cfg.shares,
            web_ratio=cfg.web_ratio,
            align_web_ratio=cfg.align_web_ratio,
            **common,
        )
    from dataclasses import replace

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


@dataclass
class TrainingData:
    """Everything the loop samples from, built deterministically from the config."""

    robot: data_mod.DemoDataset
    robot_bins: np.ndarray  # (M, H, D) target bins, precomputed
    web: data_mod.WebDataset
    heldout: dict[str, data_mod.DemoDataset]  # split -> clean held-out demonstrations
    web_heldout: data_mod.WebDataset
    filter_report: dict[str, Any]


def build_data(cfg: TrainConfig, tokenizer: ActionTokenizer, progress: bool) -> TrainingData:
    """Collect and filter demonstrations, chunk them, render web data and held-out sets."""
    d = cfg.data
    quality = data_mod.tt.DemoQuality(d.noise, d.idle, d.failed, d.jerky)
    counts = {k: v for k, v in d.counts.items() if v > 0}
    demos = data_mod.collect_demos(counts, "seen", quality, d.seed, progress=progress)
    if d.filter:
        demos, report = data_mod.filter_demos(demos)
        filter_report = asdict(report)
    else:
        filter_report = {"total": demos.num_episodes, "kept": demos.num_episodes, "dropped": {}}
    robot = data_mod.build_dataset(demos, cfg.model.horizon)
    heldout = {
        s: data_mod.heldout_dataset(s, d.heldout_per_task, cfg.model.horizon, d.seed)
        for s in SPLITS
    }
    web = data_mod.make_web_dataset(max(d.web_examples, 1), seed=d.seed)
    web_heldout = data_mod.make_web_dataset(max(d.web_examples // 4, 64), seed=d.seed + 1_000_003)
    return TrainingData(
        robot, tokenizer.encode(robot.actions), web, heldout, web_heldout, filter_report
    )


def robot_batch(
    data: TrainingData,
    index: np.ndarray,
    cfg: TrainConfig,
    rng: np.random.Generator,
    tokenizer: ActionTokenizer,
) -> dict[str, torch.Tensor]:
    """Tensors of robot examples `index`, augmented as the config says."""
    ds, aug = data.robot, cfg.augment
    images = ds.images[index]
    if aug.shift:
        images = data_mod.random_shift(images, aug.shift, rng)
    if aug.brightness or aug.contrast:
        images = data_mod.colour_jitter(images, aug.brightness, aug.contrast, rng)
    bins = data.robot_bins[index]
    if aug.action_noise:
        bins = tokenizer.encode(data_mod.action_noise(ds.actions[index], aug.action_noise, rng))
    weights = None
    if cfg.sampling.loss_weighting:
        weights = torch.from_numpy(example_loss_weights(ds.task)[index].astype(np.float32))
    return {
        "images": torch.from_numpy(np.ascontiguousarray(images)),
        "text": torch.from_numpy(ds.tokens[index]),
        "state": torch.from_numpy(ds.states[index]),
        "bins": torch.from_numpy(bins),
        "mask": torch.from_numpy(ds.mask[index]),
        "task": torch.from_numpy(ds.task[index]),
        "weights": weights,
    }


def web_batch(data: TrainingData, n: int, rng: np.random.Generator, state_dim: int) -> dict:
    """n web VQA examples (images, questions, answers), drawn uniformly."""
    index = rng.integers(0, len(data.web), n)
    return {
        "images": torch.from_numpy(data.web.images[index]),
        "text": torch.from_numpy(data.web.questions[index]),
        "state": torch.zeros(n, state_dim),
        "answers": torch.from_numpy(data.web.answers[index]),
    }


def robot_indices(
    sampler: TaskBalancedSampler,
    data: TrainingData,
    n: int,
    rng: np.random.Generator,
    progress: float,
    target_only: bool,
) -> np.ndarray:
    """Indices of the next robot examples (specialisation: target tasks only)."""
    del data, target_only  # every robot task is a target task in the built-in world
    return sampler.sample(n, rng, progress)


@torch.no_grad()
def evaluate(
    model: TinyVLA, data: TrainingData, tokenizer: ActionTokenizer, batch_size: int = 256
) -> dict[str, Any]:
    """Held-out action loss / bin accuracy / L1 per split, and held-out web loss/accuracy."""
    from vla_eval.offline import OfflineMetrics

    was_training = model.training
    model.eval()
    metrics = OfflineMetrics(tokenizer)
    for split, ds in data.heldout.items():
        for s in range(0, len(ds), batch_size):
            sl = slice(s, s + batch_size)
            out = model(
                torch.from_numpy(ds.images[sl]),
                torch.from_numpy(ds.tokens[sl]),
                torch.from_numpy(ds.states[sl]),
            )
            target = ds.actions[sl]
            bins = torch.from_numpy(tokenizer.encode(target))
            nll = F.cross_entropy(out.action_logits.flatten(0, 2), bins.flatten(), reduction="none")
            metrics.update(
                target,
                pred_tokens=out.action_logits.argmax(-1),
                nll=nll.view(bins.shape),
                task=np.asarray(FAMILIES)[ds.task[sl]],
                split=split,
                mask=ds.mask[sl],
            )
    web = data.web_heldout
    for s in range(0, len(web), batch_size):
        sl = slice(s, s + batch_size)
        n = len(web.answers[sl])
        out = model(
            torch.from_numpy(web.images[sl]),
            torch.from_numpy(web.questions[sl]),
            torch.zeros(n, model.config.state_dim),
        )
        metrics.update_web(out.answer_logits, web.answers[sl])
    model.train(was_training)
    result = metrics.compute()
    return {
        "heldout_loss": result["per_split"].get("seen", result["overall"])["loss"],
        "heldout": {
            s: {k: v[k] for k in ("loss", "accuracy", "within_2", "l1")}
            for s, v in result["per_split"].items()
        },
        "web_loss": result["web"]["loss"],
        "web_accuracy": result["web"]["accuracy"],
    }


# --- run directory ------------------------------------------------------------------


def _finite_or_text(x: float | None) -> float | str | None:
    """Metrics keep non-finite values visible: "nan"/"inf" strings, not null."""
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _text_nonfinite(value: Any) -> Any:
    """`_finite_or_text` through nested dicts (a diverged run has NaN eval metrics too)."""
    if isinstance(value, dict):
        return {k: _text_nonfinite(v) for k, v in value.items()}
    if isinstance(value, float):
        return _finite_or_text(value)
    return value


class _MetricsLog:
    """metrics.jsonl: one flushed JSON line per step; on resume, lines past the
    checkpoint are dropped so nothing is counted twice."""

    def __init__(self, path: Path, keep_through: int | None, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled
        if not enabled:
            return
        if keep_through is None:
            path.write_text("")
        elif path.exists():
            kept = []
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except ValueError:
                    break  # a line cut by the crash
                if rec.get("step", -1) < keep_through:  # steps 0..keep_through-1 are done
                    kept.append(line + "\n")
            path.write_text("".join(kept))
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            self._fh.write(json.dumps(_text_nonfinite(record), allow_nan=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self.enabled:
            self._fh.close()


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint with the highest step in ``out_dir/checkpoints``."""
    found = sorted((out_dir / "checkpoints").glob("step_*.pt"))
    return found[-1] if found else None


# --- distributed ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def _average_gradients(model: torch.nn.Module, dist_info: _Dist) -> None:
    if dist_info.world == 1:
        return
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist_info.world


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
        A `TrainResult` (final checkpoint, held-out metrics, Diagnose findings).
    """
    from tqdm import tqdm

    started = time.time()
    out = Path(out_dir)
    dist_info = _init_distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.batch_size % dist_info.world:
        raise UsageError(
            f"batch_size {config.batch_size} must divide by {dist_info.world} processes"
        )

    # Where to start: fresh, or the latest checkpoint.
    resume_from = latest_checkpoint(out) if resume else None
    if resume and resume_from is None:
        raise UsageError(f"nothing to resume in {out}: no checkpoints/step_*.pt")
    if not resume and (out / "checkpoints").exists() and any((out / "checkpoints").iterdir()):
        raise UsageError(f"{out} already holds a run; pass --resume to continue it or choose --out")
    state = ckpt_io.load_checkpoint(resume_from) if resume_from else None
    if state is not None and state["recipe"].get("train_config") != _config_dict(config):
        raise UsageError(f"{resume_from} was written by a different configuration; not resuming")
    start_step = int(state["step"]) if state else 0
    if dist_info.main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)

    # Randomness: one generator for data order and augmentation, one for torch.
    rng = np.random.default_rng([config.seed, dist_info.rank])
    torch.manual_seed(config.seed)

    tokenizer = ActionTokenizer(n_bins=config.model.n_bins)
    data = build_data(config, tokenizer, progress and dist_info.main)
    model = TinyVLA(config.model)
    if state is not None and state["model_config"].get("lora_rank"):
        model = TinyVLA(state["model_config"])  # the adapters exist in the saved weights
    if state is not None:
        model.load_state_dict(state["model"])
    model.train()

    recipe = build_recipe(config.recipe)
    stage_steps = recipe.stage_steps(config.steps)
    task_names = np.asarray(FAMILIES)[data.robot.task]
    curriculum = (
        Curriculum.staged(config.sampling.curriculum) if config.sampling.curriculum else None
    )
    sampler = TaskBalancedSampler(
        task_names, config.sampling.temperature, curriculum, config.sampling.stratified
    )
    diag = _make_diagnose(model, config, data) if config.diagnose else None
    metrics_log = _MetricsLog(out / "metrics.jsonl", start_step if state else None, dist_info.main)
    bar = tqdm(
        total=config.steps,
        initial=start_step,
        desc=f"train {config.name}",
        unit="step",
        disable=not (progress and dist_info.main),
        file=sys.stderr,
    )

    step = start_step
    last_loss: float | None = None
    heldout: dict[str, Any] = {}
    stage_start = 0
    for stage, n_steps in zip(recipe.stages, stage_steps, strict=True):
        stage_end = stage_start + n_steps
        if step >= stage_end:
            stage_start = stage_end
            continue
        recipe_mod.prepare_stage(model, stage, recipe)
        optimizer = recipe_mod.build_optimizer(model, stage)
        scheduler = recipe_mod.build_scheduler(
            optimizer, n_steps, stage.warmup_frac, stage.min_lr_frac
        )
        if state is not None and step > stage_start:  # resuming inside this stage
            ckpt_io.restore_training_state(state, optimizer, scheduler, rng)
        elif state is not None:  # resuming at a stage boundary: only the randomness
            ckpt_io.restore_rng(state["rng"], rng)
        state = None

        while step < stage_end:
            progress_frac = step / config.steps
            n_web = round(config.batch_size * stage.web_ratio)
            n_robot = config.batch_size - n_web
            per_rank = (n_robot // dist_info.world, n_web // dist_info.world)
            record: dict[str, Any] = {
                "step": step,
                "stage": stage.name,
                "lr": optimizer.param_groups[0]["lr"],
            }
            loss_sum = torch.zeros(())
            task_loss: dict[str, list[float]] = {}
            robot_loss_value = web_loss_value = None
            for _ in range(recipe.grad_accum):
                index = robot_indices(
                    sampler, data, per_rank[0], rng, progress_frac, stage.robot_data == "target"
                )
                rb = robot_batch(data, index, config, rng, tokenizer)
                out_r = model(rb["images"], rb["text"], rb["state"])
                r_loss = action_loss(
                    out_r.action_logits, rb["bins"], rb["mask"], rb["weights"],
                    regression_weight=config.action_regression,
                )  # fmt: skip
                loss = r_loss * (per_rank[0] / (per_rank[0] + per_rank[1]))
                if per_rank[1]:
                    wb = web_batch(data, per_rank[1], rng, config.model.state_dim)
                    out_w = model(wb["images"], wb["text"], wb["state"])
                    w_loss = web_loss(out_w.answer_logits, wb["answers"])
                    loss = loss + w_loss * (per_rank[1] / (per_rank[0] + per_rank[1]))
                    web_loss_value = float(w_loss.detach())
                (loss / recipe.grad_accum).backward()
                loss_sum += loss.detach() / recipe.grad_accum
                robot_loss_value = float(r_loss.detach())
                _per_task_losses(out_r.action_logits.detach(), rb, task_loss)
            _average_gradients(model, dist_info)
            grad_norm = recipe_mod.clip_gradients(model, recipe.grad_clip)
            loss_value = float(loss_sum)
            if diag is not None:
                for finding in diag.step(
                    step,
                    # the robot loss: overfitting compares it with the held-out action loss
                    loss=robot_loss_value,
                    grad_norm=grad_norm,
                    pred_actions=out_r.action_logits.detach(),
                    target_actions=rb["bins"],
                    task=task_names[index],
                    lr=record["lr"],
                    loss_per_task={k: float(np.mean(v)) for k, v in task_loss.items()},
                    samples_per_task={k: len(v) for k, v in task_loss.items()},
                ):
                    if dist_info.main:
                        tqdm.write(str(finding), file=sys.stderr)
            # A non-finite gradient skips the update (Diagnose has flagged it) but the
            # schedule still counts the step, so resumed and uninterrupted runs agree.
            stepped = math.isfinite(grad_norm)
            if stepped:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with warnings.catch_warnings():
                if not stepped:
                    warnings.simplefilter("ignore", UserWarning)  # "scheduler before optimizer"
                scheduler.step()
            step += 1

            record.update(
                loss=_finite_or_text(loss_value),
                robot_loss=_finite_or_text(robot_loss_value),
                train_web_loss=web_loss_value,
                grad_norm=_finite_or_text(grad_norm),
                loss_per_task={k: float(np.mean(v)) for k, v in sorted(task_loss.items())},
                samples_per_task={k: len(v) for k, v in sorted(task_loss.items())},
            )
            last_loss = loss_value
            if (config.eval_every and step % config.eval_every == 0) or step == config.steps:
                heldout = evaluate(model, data, tokenizer)
                record.update(
                    heldout_loss=heldout["heldout_loss"],
                    web_loss=heldout["web_loss"],
                    web_accuracy=heldout["web_accuracy"],
                    web_examples=len(data.web_heldout),  # the accuracy's sampling noise
                    heldout=heldout["heldout"],
                )
                if diag is not None:
                    for finding in diag.evaluate(
                        record["step"],  # the step of the metrics line it is logged on
                        heldout_loss=heldout["heldout_loss"],
                        web_loss=heldout["web_loss"],
                        web_accuracy=heldout["web_accuracy"],
                        web_examples=len(data.web_heldout),
                    ):
                        if dist_info.main:
                            tqdm.write(str(finding), file=sys.stderr)
                for cb in callbacks:
                    cb.on_evaluate(step, heldout)
            metrics_log.write(record)
            for cb in callbacks:
                cb.on_step(step, record)
            bar.update(1)
            if config.log_every and step % config.log_every == 0:
                bar.set_postfix(loss=f"{loss_value:.3f}", stage=stage.name, refresh=False)
            if dist_info.main and (
                (config.checkpoint_every and step % config.checkpoint_every == 0)
                or step == config.steps
                or step == stage_end
            ):
                _save(
                    out,
                    model,
                    tokenizer,
                    optimizer,
                    scheduler,
                    step,
                    stage.name,
                    recipe,
                    config,
                    rng,
                    data.robot.vocab,
                )
        stage_start = stage_end
    bar.close()
    metrics_log.close()

    findings = [f.to_dict() for f in diag.findings] if diag is not None else []
    final = out / "checkpoints" / f"step_{config.steps:06d}.pt"
    result = TrainResult(
        out, final, config.steps, last_loss, heldout, findings, time.time() - started
    )
    if dist_info.main:
        write_json(out / "findings.json", {"schema": "vla-eval/findings/1", "findings": findings})
        write_json(
            out / "run.json",
            {
                "schema": RUN_SCHEMA,
                "name": config.name,
                "config": _config_dict(config),
                "steps": config.steps,
                "final_loss": last_loss,
                "heldout": heldout,
                "filter": data.filter_report,
                "robot_samples": len(data.robot),
                "task_counts": data.robot.task_counts(),
                "findings": len(findings),
                "seconds": result.seconds,
                "checkpoint": str(final.name),
            },
        )
    for cb in callbacks:
        cb.on_end(result)
    return result


def _per_task_losses(logits: torch.Tensor, batch: dict, out: dict[str, list[float]]) -> None:
    """Per-example action loss grouped by task name (for task-imbalance detection)."""
    ce = F.cross_entropy(logits.flatten(0, 2), batch["bins"].flatten(), reduction="none")
    ce = ce.view(batch["bins"].shape)
    m = batch["mask"].unsqueeze(-1).to(ce.dtype).expand_as(ce)
    per_example = (ce * m).sum((1, 2)) / m.sum((1, 2)).clamp(min=1)
    for t, v in zip(batch["task"].tolist(), per_example.tolist(), strict=True):
        out.setdefault(FAMILIES[t], []).append(v)


def _make_diagnose(model: TinyVLA, config: TrainConfig, data: TrainingData) -> Any:
    from vla_eval.diagnose import CROSS_ENTROPY_THRESHOLDS, Diagnose

    return Diagnose(
        model,
        task_counts={k: v for k, v in data.robot.task_counts().items() if v},
        thresholds=CROSS_ENTROPY_THRESHOLDS,  # per-task errors here are cross-entropies
    )


def _config_dict(config: TrainConfig) -> dict[str, Any]:
    from vla_eval.config import to_dict

    return json.loads(dumps(to_dict(config)))


def _save(
    out: Path, model, tokenizer, optimizer, scheduler, step, stage, recipe, config, rng, vocab
) -> None:
    recipe_dict = recipe.to_dict()
    recipe_dict["train_config"] = _config_dict(config)
    recipe_dict["text_vocab"] = [str(w) for w in vocab]  # the instruction tokenizer's words
    ckpt_io.save_checkpoint(
        out / "checkpoints" / f"step_{step:06d}.pt",
        model=model,
        tokenizer=tokenizer,
        step=step,
        stage=stage,
        optimizer=optimizer,
        scheduler=scheduler,
        recipe=recipe_dict,
        rng=ckpt_io.capture_rng(rng),
    )
