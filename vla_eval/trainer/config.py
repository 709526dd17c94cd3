"""Configuration of the reference trainer: torch-free frozen dataclasses.

`TinyVLAConfig` (the model's architecture, what a checkpoint stores, and `PARTS`, the
model's named parts the recipe stages train or freeze), and the run's
`TrainConfig` with its parts `DataConfig`, `SamplingConfig`, `AugmentConfig`,
`RecipeConfig` and `TrackerConfig`. Protocol files and experiment plans build these without paying for a
torch import, so this module imports only the standard library, `vla_eval.errors`
and the task families of `vla_eval.envs.base`; it must never import torch or any
other trainer module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from vla_eval.envs.base import FAMILIES
from vla_eval.errors import UsageError

#: The named parts of a TinyVLA, the units the recipe freezes and unfreezes.
PARTS: tuple[str, ...] = ("vision_encoder", "projection", "backbone", "action_head", "lm_head")


@dataclass(frozen=True)
class TinyVLAConfig:
    """Architecture of a TinyVLA; `to_dict()` is what a checkpoint stores.

    Attributes:
        image_size: side of the square RGB input, divisible by 16.
        text_vocab_size: word-level instruction vocabulary, id 0 is PAD.
        max_text_len: longest instruction in tokens.
        state_dim: proprioceptive state size; 0 means the model takes no state.
        action_dim: D, action dimensions (7 like OpenVLA).
        horizon: H, actions per predicted chunk.
        n_bins: bins per action dimension (must match the ActionTokenizer).
        n_answers: size of the web-VQA answer vocabulary.
        width: transformer width.
        depth: transformer layers.
        heads: attention heads.
        mlp_ratio: hidden size of the feed-forward block / width.
        vision_channels: channels of the conv encoder's last layer.
        dropout: dropout in the backbone.
        lora_rank: 0, or the rank of LoRA adapters on the backbone's linear layers
            (set by `add_lora`, so a checkpoint rebuilds them).
        lora_alpha: LoRA scaling numerator (scale = alpha / rank).
        lora_dropout: dropout on the LoRA input.
    """

    image_size: int = 64
    text_vocab_size: int = 512
    max_text_len: int = 16
    state_dim: int = 5  # the built-in world's proprioception
    action_dim: int = 7
    horizon: int = 8
    n_bins: int = 256
    n_answers: int = 64
    width: int = 96
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    vision_channels: int = 64
    dropout: float = 0.0
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0

    def __post_init__(self) -> None:
        positive = (
            "image_size", "text_vocab_size", "max_text_len", "action_dim", "horizon",
            "n_answers", "width", "depth", "heads", "mlp_ratio", "vision_channels",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"model config: {name} must be a positive integer, got {value!r}")
        if self.image_size % 16:
            raise UsageError(
                f"model config: image_size must be divisible by 16, got {self.image_size}"
            )
        if self.n_bins < 2:
            raise UsageError(f"model config: n_bins must be >= 2, got {self.n_bins}")
        if self.state_dim < 0 or self.lora_rank < 0:
            raise UsageError("model config: state_dim and lora_rank must be >= 0")
        if self.width % self.heads:
            raise UsageError(
                f"model config: width {self.width} must be divisible by heads {self.heads}"
            )
        if not 0 <= self.dropout < 1 or not 0 <= self.lora_dropout < 1:
            raise UsageError("model config: dropout must lie in [0, 1)")

    @property
    def vision_tokens(self) -> int:
        """Visual tokens per image: the conv encoder downsamples by 16 per side."""
        return (self.image_size // 16) ** 2

    @property
    def seq_len(self) -> int:
        """Backbone sequence: text, visual, where (keypoints + state), H action queries, 1 answer."""
        return self.max_text_len + self.vision_tokens + 1 + self.horizon + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TinyVLAConfig:
        """Build from `to_dict()` output; an unknown key is an error naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"model config: unknown key(s) {', '.join(unknown)}")
        return cls(**dict(data))


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


# The largest peak learning rate a recipe accepts (beyond, Adam's update overflows).
MAX_LR = 1000.0


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

    def __post_init__(self) -> None:
        # Explicit ranges: a learning rate of 1e39 overflows Adam's float32 update to inf.
        for name, value in [*((f"lrs[{i}]", v) for i, v in enumerate(self.lrs)), ("lr", self.lr)]:
            if not (math.isfinite(value) and 0 < value <= MAX_LR):
                raise UsageError(f"recipe.{name} must be a number in (0, {MAX_LR:g}], got {value}")
        for name in ("web_ratio", "align_web_ratio", "warmup_frac", "min_lr_frac", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 <= value <= 1):
                raise UsageError(f"recipe.{name} must be a number in [0, 1], got {value}")
        if not all(math.isfinite(v) and v >= 0 for v in self.shares) or sum(self.shares) <= 0:
            raise UsageError(
                f"recipe.shares must be numbers >= 0 with a positive sum, got {self.shares}"
            )
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise UsageError(f"recipe.grad_clip must be a finite number >= 0, got {self.grad_clip}")
        if self.grad_accum < 1 or self.lora_rank < 1:
            raise UsageError("recipe.grad_accum and recipe.lora_rank must be at least 1")


#: The trackers a run can log to ("none": only the run folder's own files).
TRACKER_NAMES: tuple[str, ...] = ("none", "tensorboard", "mlflow", "wandb")


@dataclass(frozen=True)
class TrackerConfig:
    """Where a run's metrics and findings also go (`[train.tracker]`; `--tracker` overrides).

    Not part of what a run computes: checkpoints and run.json leave it out, so a run may
    be resumed with another tracker.

    Attributes:
        name: ``none``, ``tensorboard``, ``mlflow`` or ``wandb``.
        uri: TensorBoard: a log folder; MLflow: a tracking URI; W&B: a server URL (logs
            online). Default: a local store inside the run folder.
        project: the MLflow experiment or W&B project (default ``vla-eval``).
    """

    name: Literal["none", "tensorboard", "mlflow", "wandb"] = "none"
    uri: str | None = None
    project: str | None = None

    def __post_init__(self) -> None:
        if self.name not in TRACKER_NAMES:
            raise UsageError(
                f"tracker.name must be one of {', '.join(TRACKER_NAMES)}, got {self.name!r}"
            )


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
        tracker: an experiment tracker that also receives the metrics and findings.
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
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.seed < 2**63:
            raise UsageError(f"seed must be a whole number in [0, 2^63 - 1], got {self.seed}")
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
