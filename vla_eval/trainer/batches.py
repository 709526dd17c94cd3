"""What the training loop samples from: the run's data and its batches as tensors.

`build_data` collects, filters and chunks the expert demonstrations a `TrainConfig`
asks for and renders the web VQA data and the clean held-out sets (`TrainingData`,
deterministic in the config); `robot_batch` turns sampled example indices into
augmented tensors and `web_batch` draws web examples. Every draw comes from the one
explicit generator the caller passes, in a fixed order, so a resumed run sees the
same batches as an uninterrupted one. Depends on torch, numpy and the trainer's data
package; it must not depend on the training loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from vla_eval.actions import ActionTokenizer
from vla_eval.envs import tabletop as tt
from vla_eval.envs.base import SPLITS
from vla_eval.trainer.config import TrainConfig
from vla_eval.trainer.data.augment import action_noise, colour_jitter, random_shift
from vla_eval.trainer.data.datasets import (
    DemoDataset,
    WebDataset,
    build_dataset,
    heldout_dataset,
    make_web_dataset,
)
from vla_eval.trainer.data.demos import collect_demos
from vla_eval.trainer.data.filtering import filter_demos
from vla_eval.trainer.sampling import example_loss_weights


@dataclass
class TrainingData:
    """Everything the loop samples from, built deterministically from the config."""

    robot: DemoDataset
    robot_bins: np.ndarray  # (M, H, D) target bins, precomputed
    web: WebDataset
    heldout: dict[str, DemoDataset]  # split -> clean held-out demonstrations
    web_heldout: WebDataset
    filter_report: dict[str, Any]


def build_data(cfg: TrainConfig, tokenizer: ActionTokenizer, progress: bool) -> TrainingData:
    """Collect and filter demonstrations, chunk them, render web data and held-out sets."""
    d = cfg.data
    quality = tt.DemoQuality(d.noise, d.idle, d.failed, d.jerky)
    counts = {k: v for k, v in d.counts.items() if v > 0}
    demos = collect_demos(counts, "seen", quality, d.seed, progress=progress)
    if d.filter:
        demos, report = filter_demos(demos)
        filter_report = asdict(report)
    else:
        filter_report = {"total": demos.num_episodes, "kept": demos.num_episodes, "dropped": {}}
    robot = build_dataset(demos, cfg.model.horizon)
    heldout = {s: heldout_dataset(s, d.heldout_per_task, cfg.model.horizon, d.seed) for s in SPLITS}
    web = make_web_dataset(max(d.web_examples, 1), seed=d.seed)
    web_heldout = make_web_dataset(max(d.web_examples // 4, 64), seed=d.seed + 1_000_003)
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
        images = random_shift(images, aug.shift, rng)
    if aug.brightness or aug.contrast:
        images = colour_jitter(images, aug.brightness, aug.contrast, rng)
    bins = data.robot_bins[index]
    if aug.action_noise:
        bins = tokenizer.encode(action_noise(ds.actions[index], aug.action_noise, rng))
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
