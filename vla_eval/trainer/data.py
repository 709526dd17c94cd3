"""Training and evaluation data from the built-in world: demonstrations, web VQA, files on disk.

`collect_demos` runs the scripted expert in the tabletop world (per-task counts, a
split, a `DemoQuality`); `filter_demos` drops failed, too short or long, idle and
jerky demonstrations and says how many and why; `build_dataset` turns episodes into
per-step samples with action chunks of H steps (padded and masked at episode end);
`make_web_dataset` renders captioned question/answer tables for language retention;
`heldout_dataset` gives clean seen/unseen evaluation sets. Augmentation helpers
(random shift, colour jitter, action noise) work on numpy batches with an explicit
generator. Datasets are saved as compressed ``.npz`` and loaded with
``allow_pickle=False``. Images stay uint8 (12 KB a sample).

This module uses numpy (and tqdm for progress) only; it must not import torch, so a
data set can be built and inspected without it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.envs import tabletop as tt
from vla_eval.envs.base import FAMILIES, SPLITS
from vla_eval.envs.text import (
    TEXT_LENGTH,
    TextTokenizer,
    answer_ids,
    web_examples,
)
from vla_eval.errors import DataError, UsageError

#: The recipe's imbalanced demonstration counts (RECIPE.md, section 1).
RECIPE_COUNTS: dict[str, int] = {"pick": 50000, "place": 30000, "stack": 2000, "pour": 500}
DEMOS_SCHEMA = "vla-eval/demos/1"
WEB_SCHEMA = "vla-eval/web-vqa/1"
_TRAIN_STREAM, _HELDOUT_STREAM = 0, 1


def scaled_counts(
    scale: float, counts: Mapping[str, int] | None = None, minimum: int = 1
) -> dict[str, int]:
    """Per-task episode counts scaled down from `RECIPE_COUNTS` (or ``counts``).

    Each count is ``round(n * scale)``, at least ``minimum``, so the imbalance survives.

    >>> scaled_counts(0.01)
    {'pick': 500, 'place': 300, 'stack': 20, 'pour': 5}
    """
    if not (np.isfinite(scale) and scale > 0):
        raise UsageError(f"scale must be a positive number, got {scale}")
    counts = dict(RECIPE_COUNTS if counts is None else counts)
    return {task: max(int(minimum), round(n * scale)) for task, n in counts.items()}


def _check_counts(counts: Mapping[str, int]) -> dict[str, int]:
    out = {}
    for task, n in counts.items():
        if task not in FAMILIES:
            raise UsageError(
                f"unknown task family {task!r}; expected some of {', '.join(FAMILIES)}"
            )
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise UsageError(f"the count for {task} must be a non-negative integer, got {n!r}")
        out[task] = int(n)
    if sum(out.values()) == 0:
        raise UsageError("counts ask for no demonstrations at all")
    return out


def episode_seeds(
    family: str, split: str, count: int, seed: int, stream: int = _TRAIN_STREAM
) -> np.ndarray:
    """Distinct episode seeds for one family and split.

    Training seeds are even and held-out seeds odd, so a held-out episode never
    repeats a training one whatever base seeds are chosen.
    """
    if stream not in (_TRAIN_STREAM, _HELDOUT_STREAM):
        raise UsageError(f"stream must be 0 (training) or 1 (held out), got {stream!r}")
    rng = np.random.default_rng([int(seed), FAMILIES.index(family), SPLITS.index(split), 17])
    return 2 * rng.choice(2**30, size=count, replace=False).astype(np.int64) + stream


_STEP_FIELDS = ("images", "states", "actions", "episode", "step")


@dataclass
class Demos:
    """Recorded episodes; step arrays are concatenated episode after episode.

    Step arrays (S = total steps): ``images`` (S, 64, 64, 3) uint8 observed before
    acting, ``states`` (S, 5) float32, ``actions`` (S, 7) float32, ``episode`` (S,)
    int64 episode number, ``step`` (S,) int64 step within the episode.

    Episode arrays (E episodes): ``family`` and ``split`` (E,) int64 indices into
    `FAMILIES` / `SPLITS`, ``seed`` (E,) int64, ``instruction`` (E,) str,
    ``success`` (E,) bool, ``length`` (E,) int64, and the defects the generator
    injected (``injected_failed``, ``injected_idle``, ``injected_jerky``, (E,) bool),
    kept to check the filter, never used by it.
    """

    images: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    family: np.ndarray
    split: np.ndarray
    seed: np.ndarray
    instruction: np.ndarray
    success: np.ndarray
    length: np.ndarray
    injected_failed: np.ndarray
    injected_idle: np.ndarray
    injected_jerky: np.ndarray

    @property
    def num_episodes(self) -> int:
        return int(self.length.size)

    @property
    def num_steps(self) -> int:
        return int(self.episode.size)

    def starts(self) -> np.ndarray:
        """(E,) index of each episode's first step."""
        return (np.cumsum(self.length) - self.length).astype(np.int64)

    def select(self, keep: np.ndarray) -> Demos:
        """The episodes where ``keep`` (E,) is True, renumbered 0..k-1 in order."""
        keep = np.asarray(keep, bool)
        step_keep = keep[self.episode]
        renumber = np.cumsum(keep) - 1
        per_episode = {
            f.name: getattr(self, f.name)[keep] for f in fields(self) if f.name not in _STEP_FIELDS
        }
        return Demos(
            images=self.images[step_keep],
            states=self.states[step_keep],
            actions=self.actions[step_keep],
            episode=renumber[self.episode[step_keep]],
            step=self.step[step_keep],
            **per_episode,
        )


def collect_demos(
    counts: Mapping[str, int],
    split: str = "seen",
    quality: tt.DemoQuality | None = None,
    seed: int = 0,
    num_envs: int = 64,
    progress: bool = False,
    stream: int = _TRAIN_STREAM,
) -> Demos:
    """Run the scripted expert for ``counts[family]`` episodes of each family on ``split``.

    Args:
        counts: episodes per task family, e.g. ``scaled_counts(0.01)``.
        split: "seen" for training demonstrations, "unseen" for held-out conditions.
        quality: demonstration defects to inject (default: clean).
        seed: base seed; episodes depend only on (seed, family, split, stream).
        num_envs: environments stepped together.
        progress: show a tqdm bar on stderr.
        stream: 0 for training episodes, 1 for held-out ones (disjoint seeds).

    Returns:
        Every episode, successful or not (see `filter_demos`).
    """
    counts = _check_counts(counts)
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if num_envs < 1:
        raise UsageError(f"num_envs must be at least 1, got {num_envs}")
    quality = tt.DemoQuality() if quality is None else quality
    plan_tasks: list[str] = []
    plan_seeds: list[np.ndarray] = []
    for family, n in counts.items():
        plan_tasks += [f"{family}/{split}"] * n
        plan_seeds.append(episode_seeds(family, split, n, seed, stream))
    all_seeds = np.concatenate(plan_seeds)
    env = tt.TabletopEnv()
    expert = tt.ScriptedExpert(quality)
    records: list[tuple[np.ndarray, ...]] = []
    meta: dict[str, list] = {k: [] for k in ("instruction", "success", "failed", "idle", "jerky")}
    batches = range(0, len(plan_tasks), num_envs)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=f"demos ({split})", unit="batch", leave=False)
    for start in batches:
        seeds = all_seeds[start : start + num_envs]
        obs = env.reset(seeds, plan_tasks[start : start + num_envs])
        expert.reset(env, seeds)
        ids = np.arange(start, start + seeds.size)
        done = np.zeros(seeds.size, bool)
        while not done.all():
            actions = expert.act(env)
            live = ~done
            records.append(
                (
                    obs["image"][live],
                    obs["state"][live],
                    actions[live].astype(np.float32),
                    ids[live],
                    env.steps[live].astype(np.int64),
                )
            )
            obs, _, done, info = env.step(actions)
        meta["instruction"] += obs["instruction"]
        meta["success"].append(info["success"])
        meta["failed"].append(expert.failed)
        meta["idle"].append(expert.idle)
        meta["jerky"].append(expert.jerky)
    images, states, actions, episode, step = (np.concatenate(x) for x in zip(*records, strict=True))
    order = np.lexsort((step, episode))
    episode = episode[order]
    family_names = [t.split("/")[0] for t in plan_tasks]
    return Demos(
        images=images[order],
        states=states[order],
        actions=actions[order],
        episode=episode,
        step=step[order],
        family=np.array([FAMILIES.index(f) for f in family_names], np.int64),
        split=np.full(len(plan_tasks), SPLITS.index(split), np.int64),
        seed=all_seeds,
        instruction=np.array(meta["instruction"], dtype=str),
        success=np.concatenate(meta["success"]),
        length=np.bincount(episode, minlength=len(plan_tasks)).astype(np.int64),
        injected_failed=np.concatenate(meta["failed"]),
        injected_idle=np.concatenate(meta["idle"]),
        injected_jerky=np.concatenate(meta["jerky"]),
    )


# --- quality filtering ------------------------------------------------------------------


@dataclass(frozen=True)
class FilterConfig:
    """Thresholds of `filter_demos`.

    Attributes:
        min_steps: shorter episodes are dropped ("too_short").
        max_steps_fraction: episodes longer than this fraction of their family's step
            limit are dropped ("too_long").
        idle_window: a demo is "idle" when some ``idle_window`` consecutive steps
            neither toggle the gripper nor tilt the wrist (|dyaw| < 0.25) and their
            summed (dx, dy) is shorter than ``idle_speed * idle_window``: the gripper
            is going nowhere, whatever small noise the actions carry.
        idle_speed: see ``idle_window`` (action units per step).
        max_turn: a demo is "jerky" when the median turning angle between consecutive
            moving steps (|(dx, dy)| >= 0.3) exceeds this many radians, over at least
            two turns. A median ignores the occasional sharp turn that noise causes.
    """

    min_steps: int = 2
    max_steps_fraction: float = 0.75
    idle_window: int = 4
    idle_speed: float = 0.25
    max_turn: float = 0.5

    def __post_init__(self) -> None:
        if self.min_steps < 1 or self.idle_window < 1:
            raise UsageError("min_steps and idle_window must be at least 1")
        if not (self.max_steps_fraction > 0 and self.idle_speed > 0 and self.max_turn > 0):
            raise UsageError("max_steps_fraction, idle_speed and max_turn must be positive")


#: Reasons in the order they are checked; a demo is counted under its first reason.
FILTER_REASONS: tuple[str, ...] = ("failed", "too_short", "too_long", "jerky", "idle")


@dataclass(frozen=True)
class FilterReport:
    """What `filter_demos` kept and dropped.

    Attributes:
        total, kept: episode counts.
        dropped: episodes dropped per reason (each under its first reason in
            `FILTER_REASONS`), so the values sum to ``total - kept``.
        kept_per_family: kept episodes per family.
    """

    total: int
    kept: int
    dropped: dict[str, int]
    kept_per_family: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "kept_per_family": dict(self.kept_per_family),
        }

    def describe(self) -> str:
        """One line, e.g. ``kept 95 of 100 demonstrations (dropped: 3 failed, 2 idle)``."""
        reasons = ", ".join(f"{n} {r}" for r, n in self.dropped.items() if n)
        return f"kept {self.kept} of {self.total} demonstrations (dropped: {reasons or 'none'})"


def is_idle(actions: np.ndarray, closed: np.ndarray, window: int = 4, speed: float = 0.25) -> bool:
    """Whether an episode has ``window`` steps in a row that go nowhere (see `FilterConfig`).

    Args:
        actions: (T, 7) the episode's actions.
        closed: (T,) whether the gripper was closed before each action.
        window: steps in a row.
        speed: mean speed (action units) below which the window goes nowhere.

    >>> still = np.zeros((5, 7)); still[:, 6] = -1
    >>> is_idle(still, np.zeros(5, bool)), is_idle(still[:3], np.zeros(3, bool))
    (True, False)
    """
    t = len(actions)
    if t < window:
        return False
    busy = ((actions[:, 6] > 0) != closed.astype(bool)) | (np.abs(actions[:, 5]) >= 0.25)
    motion = np.concatenate([np.zeros((1, 2)), np.cumsum(actions[:, 0:2], axis=0)])
    net = np.hypot(*(motion[window:] - motion[:-window]).T)  # (T - window + 1,)
    busy_count = np.convolve(busy.astype(int), np.ones(window, int), mode="valid")
    return bool(((net < speed * window) & (busy_count == 0)).any())


def median_turn(actions: np.ndarray, min_speed: float = 0.3) -> tuple[float, int]:
    """Median turning angle (rad) between consecutive moving steps, and how many turns.

    Args:
        actions: (T, 7); the (dx, dy) part is used.
        min_speed: both steps of a pair must move at least this fast.

    >>> zigzag = np.zeros((4, 7)); zigzag[:, 0] = 1; zigzag[:, 1] = [1, -1, 1, -1]
    >>> angle, turns = median_turn(zigzag)
    >>> round(angle, 4), turns
    (1.5708, 3)
    """
    v = actions[:, 0:2].astype(np.float64)
    speed = np.hypot(v[:, 0], v[:, 1])
    pair = (speed[1:] >= min_speed) & (speed[:-1] >= min_speed)
    if not pair.any():
        return 0.0, 0
    a, b = v[:-1][pair], v[1:][pair]
    cos = (a * b).sum(axis=1) / (speed[:-1][pair] * speed[1:][pair])
    return float(np.median(np.arccos(np.clip(cos, -1.0, 1.0)))), int(pair.sum())


def _jerky(actions: np.ndarray, max_turn: float) -> bool:
    turn, turns = median_turn(actions)
    return turns >= 2 and turn > max_turn


def filter_demos(demos: Demos, config: FilterConfig | None = None) -> tuple[Demos, FilterReport]:
    """Drop failed, too short, too long, idle and jerky demonstrations.

    The checks read only what a recorded dataset has (success flag, actions, the
    gripper state), never the generator's injected-defect labels.

    Returns:
        The kept episodes and a `FilterReport`.
    """
    config = FilterConfig() if config is None else config
    reasons = np.full(demos.num_episodes, "", dtype=object)
    starts = demos.starts()
    limits = np.array([tt.MAX_STEPS[FAMILIES[f]] for f in demos.family.tolist()])
    for e in range(demos.num_episodes):
        length = int(demos.length[e])
        sl = slice(starts[e], starts[e] + length)
        actions, closed = demos.actions[sl], demos.states[sl, 2] > 0.5
        if not demos.success[e]:
            reasons[e] = "failed"
        elif length < config.min_steps:
            reasons[e] = "too_short"
        elif length > config.max_steps_fraction * limits[e]:
            reasons[e] = "too_long"
        elif _jerky(actions, config.max_turn):
            reasons[e] = "jerky"
        elif is_idle(actions, closed, config.idle_window, config.idle_speed):
            reasons[e] = "idle"
    keep = reasons == ""
    kept = demos.select(keep)
    report = FilterReport(
        total=demos.num_episodes,
        kept=int(keep.sum()),
        dropped={r: int((reasons == r).sum()) for r in FILTER_REASONS},
        kept_per_family={f: int((kept.family == i).sum()) for i, f in enumerate(FAMILIES)},
    )
    return kept, report


# --- per-step samples with action chunks ----------------------------------------------------


@dataclass
class DemoDataset:
    """Per-step training samples with action chunks.

    Attributes:
        images: (M, 64, 64, 3) uint8 observations.
        states: (M, 5) float32 proprioception.
        tokens: (M, L) int64 instruction token ids (`TextTokenizer`).
        task: (M,) int64 index into `FAMILIES`.
        split: (M,) int64 index into `SPLITS`.
        actions: (M, H, 7) float32: the actions at steps t .. t+H-1.
        mask: (M, H) bool, False where the chunk runs past the episode's end; those
            entries are "hold still" (0 on dims 0-5, the last gripper command on dim 6).
        episode: (M,) int64 episode number; step: (M,) int64 step within it.
        instructions: (E,) str, the instruction of each episode.
        vocab: (V,) str, the tokenizer's vocabulary (saved with the data).
    """

    images: np.ndarray
    states: np.ndarray
    tokens: np.ndarray
    task: np.ndarray
    split: np.ndarray
    actions: np.ndarray
    mask: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    instructions: np.ndarray
    vocab: np.ndarray

    def __len__(self) -> int:
        return int(self.task.size)

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[1])

    def task_counts(self) -> dict[str, int]:
        """Samples per task family (the counts temperature sampling needs)."""
        return {f: int((self.task == i).sum()) for i, f in enumerate(FAMILIES)}

    def subset(self, index: np.ndarray) -> DemoDataset:
        """The samples at ``index`` (an index array or boolean mask)."""
        keep = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if f.name not in ("instructions", "vocab")
        }
        return DemoDataset(instructions=self.instructions, vocab=self.vocab, **keep)


def chunk_actions(
    actions: np.ndarray, length: np.ndarray, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Action chunks for every step of concatenated episodes.

    Args:
        actions: (S, D) actions, episode after episode.
        length: (E,) episode lengths summing to S.
        horizon: H, steps per chunk.

    Returns:
        ``chunks`` (S, H, D) where ``chunks[s, k]`` is the action k steps after s in
        the same episode, and ``mask`` (S, H), False past the episode's end. Padded
        entries hold still: 0 on every dimension but the last, which repeats the
        episode's final gripper command.
    """
    if horizon < 1:
        raise UsageError(f"the action chunk horizon must be at least 1, got {horizon}")
    length = np.asarray(length, np.int64)
    if length.sum() != len(actions):
        raise UsageError(
            f"episode lengths sum to {length.sum()}, but there are {len(actions)} steps"
        )
    starts = np.concatenate([[0], np.cumsum(length)[:-1]])
    episode = np.repeat(np.arange(length.size), length)
    t = np.arange(len(actions)) - starts[episode]
    ahead = t[:, None] + np.arange(horizon)[None, :]  # (S, H) step within the episode
    mask = ahead < length[episode][:, None]
    source = np.minimum(starts[episode][:, None] + ahead, (starts + length - 1)[episode][:, None])
    chunks = actions[source].copy()
    pad = ~mask
    chunks[pad, :-1] = 0.0
    chunks[pad, -1] = actions[(starts + length - 1)[episode], -1][:, None].repeat(horizon, 1)[pad]
    return chunks.astype(np.float32), mask


def build_dataset(
    demos: Demos,
    horizon: int = 8,
    tokenizer: TextTokenizer | None = None,
    text_length: int = TEXT_LENGTH,
) -> DemoDataset:
    """Per-step samples with H-step action chunks from recorded episodes."""
    if demos.num_episodes == 0:
        raise UsageError("no demonstrations to build a dataset from (did filtering drop them all?)")
    tokenizer = TextTokenizer() if tokenizer is None else tokenizer
    chunks, mask = chunk_actions(demos.actions, demos.length, horizon)
    episode_tokens = tokenizer.encode(list(demos.instruction), length=text_length)
    return DemoDataset(
        images=demos.images,
        states=demos.states,
        tokens=episode_tokens[demos.episode],
        task=demos.family[demos.episode],
        split=demos.split[demos.episode],
        actions=chunks,
        mask=mask,
        episode=demos.episode.astype(np.int64),
        step=demos.step.astype(np.int64),
        instructions=demos.instruction,
        vocab=np.array(tokenizer.vocab, dtype=str),
    )


def make_demo_dataset(
    counts: Mapping[str, int],
    split: str = "seen",
    quality: tt.DemoQuality | None = None,
    horizon: int = 8,
    seed: int = 0,
    filter_config: FilterConfig | None = None,
    progress: bool = False,
) -> tuple[DemoDataset, FilterReport]:
    """Collect, filter and chunk demonstrations in one call (the training set)."""
    demos = collect_demos(counts, split, quality, seed, progress=progress)
    kept, report = filter_demos(demos, filter_config)
    return build_dataset(kept, horizon), report


def heldout_dataset(
    split: str, per_family: int = 20, horizon: int = 8, seed: int = 0
) -> DemoDataset:
    """Clean held-out demonstrations of every family on ``split``.

    Their episode seeds are odd, training seeds even, so none repeats a training episode.
    """
    counts = {f: per_family for f in FAMILIES}
    demos = collect_demos(counts, split, tt.DemoQuality(), seed, stream=_HELDOUT_STREAM)
    kept, _ = filter_demos(demos)
    return build_dataset(kept, horizon)


# --- web-style vision-language data ----------------------------------------------------------


@dataclass
class WebDataset:
    """Rendered tables with a question and a one-word answer each (VQA), plus captions.

    Attributes:
        images: (M, 64, 64, 3) uint8.
        questions: (M, L) int64 question token ids.
        answers: (M,) int64 index into `vla_eval.envs.text.ANSWERS`.
        captions: (M, L) int64 caption token ids.
        question_types: (M,) int64 index into `vla_eval.envs.text.QUESTION_TYPES`.
        vocab: (V,) str, the tokenizer's vocabulary.
    """

    images: np.ndarray
    questions: np.ndarray
    answers: np.ndarray
    captions: np.ndarray
    question_types: np.ndarray
    vocab: np.ndarray

    def __len__(self) -> int:
        return int(self.answers.size)

    def subset(self, index: np.ndarray) -> WebDataset:
        keep = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "vocab"}
        return WebDataset(vocab=self.vocab, **keep)


def make_web_dataset(
    n: int, seed: int = 0, tokenizer: TextTokenizer | None = None, text_length: int = TEXT_LENGTH
) -> WebDataset:
    """``n`` web-style VQA examples rendered from the world (see `web_examples`)."""
    tokenizer = TextTokenizer() if tokenizer is None else tokenizer
    ex = web_examples(n, seed)
    return WebDataset(
        images=ex.images,
        questions=tokenizer.encode(ex.questions, length=text_length),
        answers=answer_ids(ex.answers),
        captions=tokenizer.encode(ex.captions, length=text_length),
        question_types=ex.question_types,
        vocab=np.array(tokenizer.vocab, dtype=str),
    )


# --- augmentation ------------------------------------------------------------------------------


def random_shift(images: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by up to ``max_shift`` pixels (edge-padded random crop, as in DrQ).

    Args:
        images: (B, H, W, C) uint8.
        max_shift: largest shift in pixels per axis (0 returns a copy).
        rng: the randomness.
    """
    if max_shift < 0:
        raise UsageError(f"max_shift must be >= 0, got {max_shift}")
    b, h, w, _ = images.shape
    if max_shift == 0:
        return images.copy()
    padded = np.pad(
        images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), mode="edge"
    )
    dy, dx = rng.integers(0, 2 * max_shift + 1, (2, b))
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


def colour_jitter(
    images: np.ndarray, brightness: float, contrast: float, rng: np.random.Generator
) -> np.ndarray:
    """Scale brightness by U(1-b, 1+b) and contrast by U(1-c, 1+c), per image; uint8 out.

    Contrast scales each image around its own mean grey level; results are rounded
    and clipped to [0, 255].
    """
    if not (0 <= brightness < 1 and 0 <= contrast < 1):
        raise UsageError("brightness and contrast jitter must be in [0, 1)")
    b = images.shape[0]
    x = images.astype(np.float32)
    gain_b = rng.uniform(1 - brightness, 1 + brightness, b).astype(np.float32)
    gain_c = rng.uniform(1 - contrast, 1 + contrast, b).astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * gain_c[:, None, None, None] + mean
    x = x * gain_b[:, None, None, None]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def action_noise(
    actions: np.ndarray, std: float, rng: np.random.Generator, dims: Sequence[int] = (0, 1)
) -> np.ndarray:
    """Add Gaussian noise to the given action dimensions and clip to [-1, 1].

    The default perturbs only dx and dy: noise on the gripper dimension would flip
    grasp commands rather than perturb a motion.
    """
    if not (np.isfinite(std) and std >= 0):
        raise UsageError(f"action noise std must be >= 0, got {std}")
    out = np.array(actions, dtype=np.float32, copy=True)
    dims = list(dims)
    out[..., dims] += rng.normal(0.0, std, out[..., dims].shape).astype(np.float32)
    return np.clip(out, -1.0, 1.0)


# --- files ------------------------------------------------------------------------------------


def save_dataset(path: str | Path, dataset: DemoDataset | WebDataset) -> Path:
    """Write a dataset to a compressed ``.npz`` atomically (temporary file, then rename)."""
    path = Path(path)
    schema = DEMOS_SCHEMA if isinstance(dataset, DemoDataset) else WEB_SCHEMA
    if not isinstance(dataset, (DemoDataset, WebDataset)):
        raise UsageError(
            f"cannot save a {type(dataset).__name__}; expected DemoDataset or WebDataset"
        )
    arrays = {f.name: getattr(dataset, f.name) for f in fields(dataset)}
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise UsageError(f"field {name} holds Python objects; only plain arrays can be saved")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, schema=np.array(schema), **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_dataset(path: str | Path) -> DemoDataset | WebDataset:
    """Read a dataset written by `save_dataset` (``allow_pickle=False``: nothing executes)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no dataset file at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ValueError as e:
        raise DataError(f"{path}: not a plain-array dataset ({e})") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    schema = str(arrays.pop("schema", ""))
    cls = {DEMOS_SCHEMA: DemoDataset, WEB_SCHEMA: WebDataset}.get(schema)
    if cls is None:
        raise DataError(
            f"{path}: unknown dataset schema {schema!r}; expected {DEMOS_SCHEMA} or {WEB_SCHEMA}"
        )
    names = {f.name for f in fields(cls)}
    if set(arrays) != names:
        missing, extra = sorted(names - set(arrays)), sorted(set(arrays) - names)
        raise DataError(
            f"{path}: {schema} file has missing fields {missing} / unexpected fields {extra}"
        )
    return cls(**arrays)
