"""Per-step training samples with action chunks, held-out sets and web VQA data.

`build_dataset` turns recorded episodes into samples with H-step action chunks
(`chunk_actions`: padded and masked at episode end); `make_demo_dataset` collects,
filters and chunks in one call; `heldout_dataset` gives clean held-out demonstrations
of every family on a split; `make_web_dataset` renders captioned question/answer
tables (web-style VQA) for language retention. numpy only; must not import torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from vla_eval.envs import tabletop as tt
from vla_eval.envs.base import FAMILIES
from vla_eval.envs.tabletop.text import TEXT_LENGTH, TextTokenizer, answer_ids, web_examples
from vla_eval.errors import UsageError
from vla_eval.trainer.data.demos import HELDOUT_STREAM, Demos, collect_demos
from vla_eval.trainer.data.filtering import FilterConfig, FilterReport, filter_demos


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
    demos = collect_demos(counts, split, tt.DemoQuality(), seed, stream=HELDOUT_STREAM)
    kept, _ = filter_demos(demos)
    return build_dataset(kept, horizon)


# --- web-style vision-language data ----------------------------------------------------------


@dataclass
class WebDataset:
    """Rendered tables with a question and a one-word answer each (VQA), plus captions.

    Attributes:
        images: (M, 64, 64, 3) uint8.
        questions: (M, L) int64 question token ids.
        answers: (M,) int64 index into `vla_eval.envs.tabletop.text.ANSWERS`.
        captions: (M, L) int64 caption token ids.
        question_types: (M,) int64 index into `vla_eval.envs.tabletop.text.QUESTION_TYPES`.
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
