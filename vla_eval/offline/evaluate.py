"""`vla-eval offline CKPT...`: checkpoints on held-out data, one result per checkpoint.

`evaluate_checkpoints` loads every checkpoint first (a bad file stops the command before
any evaluation), builds or reads the held-out data once per chunk length, and runs
`evaluate_model` on each: the data's arrays are fitted to the model (chunk length,
instruction vocabulary, state), the trainer's one forward loop
(`vla_eval.trainer.forward`) scores them, and a few episodes are kept as open-loop
traces. Several checkpoints of a run make a learning curve. torch and the trainer are
imported inside the functions; this module must not depend on the training loop, the
online evaluator, reports or the command line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import DataError, UsageError
from vla_eval.offline.heldout import (
    HeldoutData,
    builtin_heldout,
    load_heldout,
    positive,
    summarize,
)
from vla_eval.offline.output import SCHEMA, tokenizer_info
from vla_eval.offline.traces import TraceRecorder


def evaluate_model(
    model: Any,
    tokenizer: ActionTokenizer,
    data: HeldoutData,
    *,
    batch_size: int = 256,
    text_vocab: Sequence[str] | None = None,
    n_traces: int = 4,
    progress: bool = False,
) -> dict[str, Any]:
    """Offline metrics of a TinyVLA-style model on held-out data, batched under no_grad.

    The forward passes are `vla_eval.trainer.forward.forward_metrics`; per-split
    `OfflineMetrics` are merged for the overall numbers (which merging makes exact).

    Args:
        model: callable ``model(images, text_ids, state) -> (action_logits, answer_logits)``
            with action_logits (B, H, D, n_bins); ``model.config`` gives horizon,
            action_dim, n_bins, state_dim, max_text_len and text_vocab_size.
        tokenizer: the model's action tokenizer.
        data: the held-out data (`builtin_heldout` or `load_heldout`).
        batch_size: samples per forward pass.
        text_vocab: the model's instruction vocabulary; the data's token ids are
            re-mapped word by word when it differs from the data's.
        n_traces: held-out episodes whose open-loop actions are kept for plotting.
        progress: show a tqdm bar on stderr.

    Returns:
        ``{"metrics": OfflineMetrics.compute() over every split (with "web"),
        "by_split": {split: per-dimension / per-chunk-step / dispersion detail},
        "traces": [...], "seconds": float}``.
    """
    from tqdm import tqdm

    from vla_eval.trainer.forward import forward_metrics, merged

    started = time.perf_counter()
    cfg = model.config
    batch_size = positive(batch_size, "--batch-size")
    parts = [(s, _fit_to_model(ds, cfg, tokenizer, text_vocab, data)) for s, ds in data.demos]
    names = data.action_names
    names = list(names) if names is not None and len(names) == cfg.action_dim else None
    web = None if data.web is None else _fit_web(data.web, cfg, text_vocab, data)
    traces = TraceRecorder(data.demos, n_traces, tokenizer, data.task_names, names)
    total_batches = sum(-(-len(p["actions"]) // batch_size) for _, p in parts)
    if web is not None:
        total_batches += -(-len(web["answers"]) // batch_size)
    bar = tqdm(
        total=total_batches,
        desc="offline",
        unit="batch",
        disable=not progress,
        file=sys.stderr,
        leave=False,
    )

    def on_batch(part: int, start: int, pred_bins: np.ndarray | None) -> None:
        if pred_bins is not None:
            traces.record(part, start, pred_bins, parts[part][1])
        bar.update(1)

    try:
        per_split, web_metrics = forward_metrics(
            model, tokenizer, parts, web, batch_size=batch_size, dim_names=names, on_batch=on_batch
        )
    finally:
        bar.close()
    result = merged(per_split, web_metrics).compute()
    by_split = {}
    for split, m in sorted(per_split.items()):
        detail = m.compute()
        by_split[split] = {k: detail[k] for k in ("per_dim", "per_chunk_step", "dispersion_ratio")}
    return {
        "metrics": result,
        "by_split": by_split,
        "traces": traces.finish(),
        "seconds": time.perf_counter() - started,
    }


def evaluate_checkpoints(
    paths: Sequence[str],
    *,
    data: str | None = None,
    splits: Sequence[str] | None = None,
    per_task: int = 20,
    seed: int = 0,
    web_examples: int = 500,
    batch_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """`vla-eval offline CKPT...`: every checkpoint on the same held-out data.

    Every checkpoint is loaded and validated first (``torch.load(weights_only=True)``),
    so a bad file in the list stops the command before any evaluation runs.

    Args:
        paths: checkpoint files (several, e.g. a run's ``checkpoints/*.pt``, give a
            learning curve); a directory stands for its ``*.pt`` files, or for those in
            its ``checkpoints/`` folder (a run directory).
        data: a dataset ``.npz`` or directory (`load_heldout`); default: the built-in
            world's held-out demonstrations (`builtin_heldout`).
        splits: splits to evaluate (default: all).
        per_task: built-in data: episodes per task family and split.
        seed: built-in data: the data seed.
        web_examples: built-in data: held-out web VQA questions (0: none).
        batch_size: samples per forward pass.
        progress: tqdm bars on stderr.

    Returns:
        The ``vla-eval/offline/1`` result without provenance (the caller adds it).
    """
    if not paths:
        raise UsageError("give one or more checkpoint files")
    # Check the cheap arguments before loading anything.
    positive(batch_size, "--batch-size")
    if data is None:
        positive(per_task, "--per-task")
        if web_examples < 0:
            raise UsageError(f"--web-examples must be >= 0, got {web_examples}")
    policies = [_load_checkpoint(path) for path in expand_checkpoints(paths)]

    loaded = load_heldout(data, splits) if data is not None else None
    cache: dict[int, HeldoutData] = {}

    def data_for(horizon: int) -> HeldoutData:
        if loaded is not None:
            return loaded
        # Checkpoints of different runs may predict chunks of different lengths.
        if horizon not in cache:
            cache[horizon] = builtin_heldout(splits, per_task, horizon, seed, web_examples)
        return cache[horizon]

    results = []
    for model, tokenizer, vocab, meta in policies:
        held = data_for(model.config.horizon)
        evaluated = evaluate_model(
            model, tokenizer, held, batch_size=batch_size, text_vocab=vocab, progress=progress
        )
        results.append({**meta, **evaluated, "tokenizer": tokenizer_info(tokenizer)})
    source = summarize(data_for(policies[-1][0].config.horizon))
    seeds = {"data": source.get("seed"), "web": source.get("web_seed")}
    return {
        "schema": SCHEMA,
        "kind": "checkpoints",
        "data": source,
        "seeds": seeds,
        "results": results,
    }


def expand_checkpoints(paths: Sequence[str]) -> list[str]:
    """Checkpoint files; a directory gives its ``*.pt`` (or ``checkpoints/*.pt``), sorted."""
    files: list[str] = []
    for p in paths:
        folder = Path(p)
        if not folder.is_dir():
            files.append(str(p))
            continue
        if (folder / "checkpoints").is_dir():
            folder = folder / "checkpoints"
        found = sorted(folder.glob("*.pt"))
        if not found:
            raise UsageError(f"{p} is a directory without checkpoint (*.pt) files")
        files += [str(f) for f in found]
    return files


def _load_checkpoint(path: str) -> tuple[Any, ActionTokenizer, Any, dict[str, Any]]:
    """(model, tokenizer, instruction vocabulary, result metadata) of one checkpoint."""
    from vla_eval.trainer.checkpoint import load_policy

    model, tokenizer, ckpt = load_policy(path)
    recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), dict) else {}
    config = recipe.get("train_config") if isinstance(recipe.get("train_config"), dict) else {}
    if tokenizer.n_bins != model.config.n_bins:
        raise DataError(
            f"checkpoint {path}: its action tokenizer has {tokenizer.n_bins} bins but the "
            f"model predicts {model.config.n_bins}"
        )
    meta = {
        "checkpoint": str(path),
        "step": int(ckpt["step"]),
        "stage": ckpt["stage"],
        "run": config.get("name"),
    }
    # Only these survive: the optimizer state in `ckpt` is not needed for evaluation.
    return model, tokenizer, recipe.get("text_vocab"), meta


# --- fitting the held-out data to a model -------------------------------------------------------


def _names(index: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Integer labels -> their names (the numbers as text where the data names none)."""
    if not names:
        return index.astype(str).astype(object)
    return np.asarray(names, dtype=object)[index]


def _remap_text(
    tokens: np.ndarray, data_vocab: Sequence[str], model_vocab: Sequence[str] | None
) -> np.ndarray:
    """Instruction ids in the data's vocabulary -> ids in the model's (unknown words -> UNK)."""
    from vla_eval.envs.tabletop.text import UNK

    if model_vocab is None or list(model_vocab) == list(data_vocab):
        return tokens
    index = {w: i for i, w in enumerate(model_vocab)}
    table = np.array([index.get(str(w), UNK) for w in data_vocab], dtype=np.int64)
    return table[tokens]


def _fit_text(tokens: np.ndarray, cfg: Any) -> np.ndarray:
    if tokens.shape[1] > cfg.max_text_len:
        if np.any(tokens[:, cfg.max_text_len :] != 0):
            raise DataError(
                f"instructions are longer than the model's max_text_len {cfg.max_text_len}"
            )
        tokens = tokens[:, : cfg.max_text_len]
    if tokens.size and tokens.max() >= cfg.text_vocab_size:
        raise DataError(
            f"instruction token ids reach {int(tokens.max())}, beyond the model's text "
            f"vocabulary of {cfg.text_vocab_size}"
        )
    return np.ascontiguousarray(tokens)


def _fit_to_model(
    ds: Any,
    cfg: Any,
    tokenizer: ActionTokenizer,
    text_vocab: Sequence[str] | None,
    data: HeldoutData,
) -> dict[str, Any]:
    """A demo dataset's arrays shaped for the model: chunk length, text ids, target bins."""
    h_data, d_data = ds.actions.shape[1:]
    if d_data != cfg.action_dim:
        raise DataError(
            f"the data has {d_data} action dimensions but the model predicts {cfg.action_dim}"
        )
    if h_data < cfg.horizon:
        raise DataError(
            f"the data's action chunks have {h_data} steps, fewer than the model's horizon "
            f"{cfg.horizon}"
        )
    if cfg.state_dim and ds.states.shape[1] != cfg.state_dim:
        raise DataError(
            f"the data's state has {ds.states.shape[1]} values but the model takes {cfg.state_dim}"
        )
    # Chunk t holds actions t..t+H-1, so the first H steps of a longer chunk are the H-chunk.
    actions = np.ascontiguousarray(ds.actions[:, : cfg.horizon], dtype=np.float64)
    tokens = _fit_text(_remap_text(ds.tokens, ds.vocab, text_vocab), cfg)
    return {
        "images": np.ascontiguousarray(ds.images),
        "tokens": tokens,
        "states": np.ascontiguousarray(ds.states, np.float32) if cfg.state_dim else None,
        "actions": actions,
        "bins": tokenizer.encode(actions),
        "mask": np.ascontiguousarray(ds.mask[:, : cfg.horizon]),
        "task": _names(ds.task, data.task_names),
        "episode": ds.episode,
        "step": ds.step,
    }


def _fit_web(web: Any, cfg: Any, text_vocab: Sequence[str] | None, data: HeldoutData) -> dict:
    """A web VQA dataset's arrays for the model: question ids, answers, question kinds."""
    questions = _fit_text(_remap_text(web.questions, web.vocab, text_vocab), cfg)
    answers = web.answers
    if answers.size and answers.max() >= cfg.n_answers:
        raise DataError(
            f"web answers reach id {int(answers.max())}, beyond the model's {cfg.n_answers}"
        )
    kinds = _names(web.question_types, data.question_kinds)
    return {"images": web.images, "questions": questions, "answers": answers, "kinds": kinds}
