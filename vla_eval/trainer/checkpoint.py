"""Checkpoints: atomic save, safe load, format version, and random-number state.

A checkpoint is a ``torch.save`` dict with a fixed set of keys (``format``
"vla-eval/ckpt/1", ``model_config``, ``model``, ``tokenizer``, ``optimizer``,
``scheduler``, ``step``, ``stage``, ``rng``, ``recipe``) holding only tensors and
plain Python data, so it loads with ``torch.load(weights_only=True)``. Anything that
would need arbitrary pickle (which can run code while loading) is refused with a
`UsageError` before any of it executes. Saving writes a temporary file in the same
folder, fsyncs it and renames it over the target, so a crash leaves either the old
checkpoint or the new one, never half of one. Random-number state (Python, numpy,
torch, and any explicit generators) is captured as tensors and JSON text for exact
resumption. Depends on torch and the standard library; the model is imported only
by `load_policy`.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_eval.errors import DataError, UsageError
from vla_eval.results import atomic_write

FORMAT = "vla-eval/ckpt/1"
REQUIRED_KEYS: tuple[str, ...] = (
    "format",
    "model_config",
    "model",
    "tokenizer",
    "optimizer",
    "scheduler",
    "step",
    "stage",
    "rng",
    "recipe",
)


# --- random-number state ----------------------------------------------------------


def capture_rng(
    np_generator: np.random.Generator | None = None,
    torch_generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Random-number state as weights_only-safe data.

    Python's and numpy's states become JSON text (numpy's PCG64 state holds 128-bit
    integers, which no tensor can); torch's become uint8 tensors.

    Args:
        np_generator: the run's explicit numpy generator, if any.
        torch_generator: the run's explicit torch generator, if any.
    """
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "python": json.dumps([py_version, list(py_state), py_gauss]),
        # The legacy global state too: third-party code (augmentation libraries) may use it.
        "numpy_global": json.dumps(_jsonable_np_state(np.random.get_state(legacy=False))),  # noqa: NPY002
        "torch": torch.get_rng_state(),
        "numpy_generator": None,
        "torch_generator": None,
    }
    if np_generator is not None:
        state["numpy_generator"] = json.dumps(_jsonable_np_state(np_generator.bit_generator.state))
    if torch_generator is not None:
        state["torch_generator"] = torch_generator.get_state()
    return state


def restore_rng(
    state: Mapping[str, Any],
    np_generator: np.random.Generator | None = None,
    torch_generator: torch.Generator | None = None,
) -> None:
    """Restore what `capture_rng` captured (into the given generators, where saved)."""
    try:
        version, py_state, gauss = json.loads(state["python"])
        random.setstate((version, tuple(py_state), gauss))
        np.random.set_state(_np_state_from_json(json.loads(state["numpy_global"])))  # noqa: NPY002
        torch.set_rng_state(state["torch"])
        if np_generator is not None and state.get("numpy_generator") is not None:
            np_generator.bit_generator.state = _np_state_from_json(
                json.loads(state["numpy_generator"])
            )
        if torch_generator is not None and state.get("torch_generator") is not None:
            torch_generator.set_state(state["torch_generator"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"checkpoint random-number state is malformed: {exc}") from None


def _jsonable_np_state(state: Mapping[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, np.ndarray):
            return {"__ndarray__": v.tolist(), "dtype": str(v.dtype)}
        if isinstance(v, np.generic):
            return v.item()
        return v

    return conv(state)


def _np_state_from_json(state: Mapping[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, Mapping):
            if "__ndarray__" in v:
                return np.asarray(v["__ndarray__"], dtype=v["dtype"])
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(state)


# --- save -------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: torch.nn.Module,
    tokenizer: Any,
    step: int,
    stage: str | int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    recipe: Any = None,
    rng: Mapping[str, Any] | None = None,
    model_config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file, fsync, rename).

    Args:
        path: destination file.
        model: the model; its ``config.to_dict()`` is stored unless `model_config` is given.
        tokenizer: an `ActionTokenizer` (its ``state_dict()`` is stored) or that dict.
        step: optimizer steps done.
        stage: name or index of the current stage.
        optimizer: optimizer whose state to keep for resuming.
        scheduler: LR scheduler whose state to keep.
        recipe: a `Recipe` (stored as ``to_dict()``) or plain dict.
        rng: `capture_rng()` output; captured now if omitted.
        model_config: plain-dict architecture, if the model has no ``config.to_dict()``.
        extra: more top-level entries (plain data or tensors), e.g. ``diagnose``.

    Returns:
        The path written.
    """
    if model_config is None:
        cfg = getattr(model, "config", None)
        if cfg is None or not hasattr(cfg, "to_dict"):
            raise UsageError(
                "save_checkpoint needs model_config for a model without config.to_dict()"
            )
        model_config = cfg.to_dict()
    payload = {
        "format": FORMAT,
        "model_config": dict(model_config),
        "model": model.state_dict(),
        "tokenizer": tokenizer.state_dict() if hasattr(tokenizer, "state_dict") else tokenizer,
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "step": int(step),
        "stage": stage,
        "rng": dict(rng) if rng is not None else capture_rng(),
        "recipe": recipe.to_dict() if hasattr(recipe, "to_dict") else recipe,
    }
    payload.update(extra or {})
    return atomic_write(path, lambda fh: torch.save(payload, fh))


# --- load -------------------------------------------------------------------------


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and validate a checkpoint without executing anything from the file.

    Returns:
        The checkpoint dict (tensors on CPU).

    Raises:
        UsageError: the file is missing, not a checkpoint, truncated, or needs
            arbitrary pickle (refused, never executed).
        DataError: the checkpoint's format version or keys are wrong.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise UsageError(f"checkpoint path is not a file: {path}")
    if path.stat().st_size == 0:
        raise UsageError(f"checkpoint {path} is empty (an interrupted copy?)")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it may not parse; the refusal below is what counts.
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UsageError(_refusal(path, str(exc))) from None
    except Exception as exc:  # torch raises many types for damaged files; none may escape
        reason = " ".join(str(exc).split()).split(". ")[0][:120] or type(exc).__name__
        raise UsageError(
            f"cannot read checkpoint {path}: the file is truncated, corrupted or not a torch "
            f"checkpoint ({reason})"
        ) from None
    return validate_checkpoint(ckpt, path)


def validate_checkpoint(ckpt: Any, path: str | os.PathLike[str] = "<checkpoint>") -> dict[str, Any]:
    """Check a loaded checkpoint's format version and keys; return it."""
    if not isinstance(ckpt, dict) or "format" not in ckpt:
        raise DataError(f"{path} is not a vla-eval checkpoint (no 'format' entry)")
    if ckpt["format"] != FORMAT:
        raise DataError(
            f"{path} has checkpoint format {ckpt['format']!r}; this version of vla-eval reads "
            f"{FORMAT!r}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise DataError(f"checkpoint {path} lacks {', '.join(missing)}")
    if not isinstance(ckpt["model"], Mapping) or not all(
        isinstance(v, torch.Tensor) for v in ckpt["model"].values()
    ):
        raise DataError(f"checkpoint {path}: 'model' is not a state dict of tensors")
    if not isinstance(ckpt["model_config"], Mapping):
        raise DataError(f"checkpoint {path}: 'model_config' is not a dict")
    _check_fields(ckpt, path)
    return ckpt


# Limits on what a checkpoint may declare, checked before anything is allocated.
MAX_CONFIG_INT = 1 << 20  # any size in model_config (width, vocabulary, bins, ...)
MAX_CONFIG_DEPTH = 256  # transformer layers


def _check_fields(ckpt: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Types and values a checkpoint's users rely on: step, recipe vocabulary, finite weights."""
    step = ckpt["step"]
    if type(step) is not int or step < 0:
        raise DataError(f"checkpoint {path}: 'step' must be a whole number >= 0, got {step!r}")
    recipe = ckpt.get("recipe")
    if recipe is not None and not isinstance(recipe, Mapping):
        raise DataError(f"checkpoint {path}: 'recipe' must be a dict, got {type(recipe).__name__}")
    vocab = (recipe or {}).get("text_vocab")
    if vocab is not None and (
        not isinstance(vocab, (list, tuple)) or not all(isinstance(w, str) for w in vocab)
    ):
        raise DataError(f"checkpoint {path}: 'recipe.text_vocab' must be a list of words")
    tokenizer = ckpt.get("tokenizer")
    bins = tokenizer.get("n_bins") if isinstance(tokenizer, Mapping) else None
    if bins is not None and (type(bins) is not int or not 2 <= bins <= MAX_CONFIG_INT):
        raise DataError(
            f"checkpoint {path}: tokenizer n_bins must be a whole number in 2..{MAX_CONFIG_INT:,}"
        )
    for name, tensor in ckpt["model"].items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise DataError(
                f"checkpoint {path}: weight {name!r} holds NaN or infinite values (a diverged "
                "run?); refusing to evaluate it -- use an earlier checkpoint"
            )


def _check_architecture(ckpt: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The declared architecture must fit the stored weights, checked without allocating.

    The model is built on PyTorch's ``meta`` device (shapes only, no memory), so a small
    file that declares a huge width fails here instead of allocating gigabytes.
    """
    from vla_eval.trainer.model import TinyVLA

    config = ckpt["model_config"]
    for key, value in config.items():
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_CONFIG_INT:
            raise DataError(
                f"checkpoint {path}: model_config {key} = {value} exceeds {MAX_CONFIG_INT:,}"
            )
    if isinstance(config.get("depth"), int) and config["depth"] > MAX_CONFIG_DEPTH:
        raise DataError(f"checkpoint {path}: model_config depth exceeds {MAX_CONFIG_DEPTH}")
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in TinyVLA(config).state_dict().items()}
    except (TypeError, ValueError, KeyError) as exc:
        raise DataError(f"checkpoint {path}: unusable model_config ({exc})") from None
    stored = ckpt["model"]
    for key, shape in shapes.items():
        if key in stored and tuple(stored[key].shape) != shape:
            raise DataError(
                f"checkpoint {path}: weights do not fit its model_config ({key!r} has shape "
                f"{tuple(stored[key].shape)}, the config declares {shape})"
            )


def _refusal(path: Path, message: str) -> str:
    # torch's message suggests weights_only=False; never pass that advice on.
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return (
            f"refusing to load {path}: it needs arbitrary pickle (it references "
            f"{found.group(1)}), which could run code while loading; vla-eval only loads "
            "checkpoints made of tensors and plain data (torch.load weights_only=True)"
        )
    return (
        f"refusing to load {path}: it is not a checkpoint made of tensors and plain data "
        "(a raw pickle stream, or a corrupted file); vla-eval never unpickles arbitrary "
        "objects, because that could run code"
    )


def restore_training_state(
    ckpt: Mapping[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    np_generator: np.random.Generator | None = None,
    torch_generator: torch.Generator | None = None,
) -> int:
    """Load optimizer, scheduler and RNG state from a checkpoint; return its step.

    Build the optimizer *and* the scheduler for the saved stage first, then call
    this: loading the optimizer before constructing the scheduler would let the new
    scheduler overwrite the restored learning rate.
    """
    try:
        if optimizer is not None and ckpt["optimizer"] is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt["scheduler"] is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
    except (ValueError, KeyError) as exc:
        raise DataError(
            f"checkpoint optimizer/scheduler state does not fit this stage: {exc}"
        ) from None
    restore_rng(ckpt["rng"], np_generator, torch_generator)
    return int(ckpt["step"])


def load_policy(path: str | os.PathLike[str]) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuild the model and action tokenizer from a checkpoint, in eval mode.

    Returns:
        (TinyVLA, ActionTokenizer, checkpoint dict).
    """
    from vla_eval.actions import ActionTokenizer
    from vla_eval.trainer.model import TinyVLA

    ckpt = load_checkpoint(path)
    _check_architecture(ckpt, path)
    model = TinyVLA(ckpt["model_config"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatched weights"
        raise DataError(
            f"checkpoint {path}: weights do not fit its model_config ({first})"
        ) from None
    tokenizer = ActionTokenizer.from_state_dict(ckpt["tokenizer"])
    return model.eval(), tokenizer, ckpt
