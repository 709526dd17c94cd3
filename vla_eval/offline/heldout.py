"""Held-out evaluation data for `vla-eval offline`: the built-in world's or dataset files.

`HeldoutData` is what the evaluator reads: demonstrations per split, an optional web
VQA set, and the names that give the data's integer fields meaning (task names, action
dimension names, question kinds), so the evaluator itself knows no world. The built-in
data (`builtin_heldout`) and dataset files written by the trainer's `save_dataset`
(`load_heldout`) fill those names from the tabletop world. The trainer's data code is
imported inside the functions; this module must not depend on the trainer's model,
training loop or any command-line code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.errors import DataError, UsageError

#: Offset of the held-out web VQA seed from the data seed, as the trainer uses it.
WEB_SEED_OFFSET = 1_000_003


@dataclass
class HeldoutData:
    """Evaluation data: (split, DemoDataset) parts and an optional web VQA set.

    Attributes:
        demos: list of (split name, `DemoDataset` holding only that split's samples).
        web: a `WebDataset`, or None to skip the language-retention metrics.
        source: plain-data description written into the results.
        task_names: the name of each task index in the demonstrations' ``task`` field.
        action_names: names of the action dimensions (None: ``d0, d1, ...``).
        question_kinds: the name of each index in the web set's ``question_types``.
    """

    demos: list[tuple[str, Any]]
    web: Any | None
    source: dict[str, Any]
    task_names: Sequence[str] = ()
    action_names: Sequence[str] | None = None
    question_kinds: Sequence[str] = ()


def world_names() -> dict[str, Any]:
    """The tabletop world's task, action-dimension and question-kind names (for `HeldoutData`)."""
    from vla_eval.envs.base import FAMILIES
    from vla_eval.envs.tabletop import ACTION_NAMES
    from vla_eval.envs.tabletop.text import QUESTION_TYPES

    return {
        "task_names": tuple(FAMILIES),
        "action_names": tuple(ACTION_NAMES),
        "question_kinds": tuple(QUESTION_TYPES),
    }


def parse_splits(text: str | None, allowed: Sequence[str] | None = None) -> list[str] | None:
    """``"seen,unseen"`` -> ``["seen", "unseen"]`` (None stays None: every split).

    >>> parse_splits("unseen, seen")
    ['unseen', 'seen']
    """
    if text is None:
        return None
    splits = list(dict.fromkeys(s.strip() for s in str(text).split(",") if s.strip()))
    if not splits:
        raise UsageError("--split needs at least one split name, e.g. --split seen,unseen")
    if allowed is not None:
        unknown = [s for s in splits if s not in allowed]
        if unknown:
            raise UsageError(
                f"unknown split {unknown[0]!r}; the built-in world has {', '.join(allowed)}"
            )
    return splits


def builtin_heldout(
    splits: Sequence[str] | None = None,
    per_task: int = 20,
    horizon: int = 8,
    seed: int = 0,
    web_examples: int = 500,
) -> HeldoutData:
    """Held-out demonstrations of the built-in world, and its held-out web VQA questions.

    Deterministic for given arguments. Held-out episodes use odd episode seeds and
    training episodes even ones, so no held-out episode was ever trained on; the web
    questions use seed ``seed + 1_000_003``, the trainer's held-out web stream.

    Args:
        splits: splits to generate (default: seen and unseen).
        per_task: episodes per task family and split.
        horizon: action chunk length H of the targets (the model's).
        seed: data seed.
        web_examples: web VQA questions (0: none).
    """
    from vla_eval.envs.base import SPLITS
    from vla_eval.trainer.data.datasets import heldout_dataset, make_web_dataset

    splits = list(SPLITS) if splits is None else list(splits)
    per_task = positive(per_task, "--per-task")
    if web_examples < 0:
        raise UsageError(f"--web-examples must be >= 0, got {web_examples}")
    demos = [(s, heldout_dataset(s, per_task, horizon, seed)) for s in splits]
    web_seed = seed + WEB_SEED_OFFSET
    web = make_web_dataset(web_examples, seed=web_seed) if web_examples else None
    source = {
        "kind": "built-in",
        "splits": splits,
        "per_task": per_task,
        "seed": seed,
        "web_seed": web_seed if web else None,
        "web_examples": web_examples,
    }
    return HeldoutData(demos, web, source, **world_names())


def load_heldout(path: str | Any, splits: Sequence[str] | None = None) -> HeldoutData:
    """Held-out data from dataset ``.npz`` files written by `save_dataset`.

    Args:
        path: one ``.npz`` or a directory whose ``*.npz`` files are all read. Demo
            datasets give the demonstrations (split by their ``split`` field); a web
            VQA dataset, if present, gives the language-retention set.
        splits: keep only these splits (default: every split in the data).
    """
    from vla_eval.envs.base import SPLITS
    from vla_eval.trainer.data.datasets import WebDataset
    from vla_eval.trainer.data.files import load_dataset

    root = Path(path)
    if root.is_dir():
        files = sorted(root.glob("*.npz"))
        if not files:
            raise UsageError(f"--data {root}: the directory holds no .npz dataset files")
    elif root.is_file():
        files = [root]
    else:
        raise UsageError(f"--data {root}: no such file or directory")
    demos: list[tuple[str, Any]] = []
    web = None
    for f in files:
        ds = load_dataset(f)
        if isinstance(ds, WebDataset):
            if web is not None:
                raise UsageError(f"--data {root}: more than one web VQA dataset")
            web = ds
            continue
        if len(ds) == 0:
            continue
        if ds.split.min() < 0 or ds.split.max() >= len(SPLITS):
            raise DataError(f"{f}: split indices outside 0..{len(SPLITS) - 1}")
        for i, name in enumerate(SPLITS):
            rows = ds.split == i
            if rows.any() and (splits is None or name in splits):
                demos.append((name, ds.subset(rows)))
    found = sorted({s for s, _ in demos})
    if splits is not None:
        missing = [s for s in splits if s not in found]
        if missing:
            raise UsageError(f"--data {root} has no demonstrations of split {missing[0]!r}")
    if not demos:
        raise UsageError(f"--data {root} holds no demonstrations to evaluate on")
    source = {
        "kind": "files",
        "path": str(root),
        "files": [str(f) for f in files],
        "splits": found if splits is None else list(splits),
        "web_examples": 0 if web is None else len(web),
    }
    # The dataset files' integer fields index the tabletop world's names (`save_dataset`).
    return HeldoutData(demos, web, source, **world_names())


def summarize(data: HeldoutData) -> dict[str, Any]:
    """The data's ``source`` with its sample and episode counts per split (for the results)."""
    source = dict(data.source)
    source["samples"] = {s: sum(len(d) for n, d in data.demos if n == s) for s in source["splits"]}
    source["episodes"] = {
        s: sum(np.unique(d.episode).size for n, d in data.demos if n == s) for s in source["splits"]
    }
    return source


def positive(value: Any, name: str) -> int:
    """``value`` as an int, or a `UsageError` naming the option when it is not >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
