"""`vla-eval offline --predictions FILE.npz`: metrics of a model this project did not train.

A predictions file (DESIGN.md) holds ``target_actions`` and ``pred_actions`` or
``pred_tokens``, optionally ``task``, ``split``, ``logits``, ``mask`` and ``dim_names``.
`load_predictions` reads it without unpickling anything and validates every array;
`score_predictions` bins it with the given tokenizer (`prediction_tokenizer`) and scores
it with `OfflineMetrics`. numpy only: scoring a predictions file never loads torch, the
trainer or any world.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import DataError, UsageError
from vla_eval.inputs import decode_labels
from vla_eval.offline.metrics import OfflineMetrics
from vla_eval.offline.output import SCHEMA, tokenizer_info

#: Keys a predictions file may hold (DESIGN.md); `target_actions` and one `pred_*` are required.
PREDICTION_KEYS: tuple[str, ...] = (
    "pred_tokens",
    "pred_actions",
    "target_actions",
    "task",
    "split",
    "logits",
    "mask",
    "dim_names",
)


def load_predictions(path: str | Any) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read a predictions ``.npz`` (DESIGN.md) without unpickling anything.

    Returns:
        (arrays by key, warnings). Arrays are validated for presence, dtype, shape and
        finiteness; every problem raises `DataError` naming the key.
    """
    path = Path(path)
    arrays = _read_npz(path)
    warnings = [
        f"{path}: ignoring unknown key {k!r} (known: {', '.join(PREDICTION_KEYS)})"
        for k in sorted(set(arrays) - set(PREDICTION_KEYS))
    ]
    if "target_actions" not in arrays:
        raise DataError(f"{path} lacks 'target_actions' (the true actions, (N, D) or (N, H, D))")
    if "pred_actions" not in arrays and "pred_tokens" not in arrays:
        raise DataError(f"{path} lacks 'pred_actions' or 'pred_tokens' (one is required)")
    target = _numeric(arrays["target_actions"], "target_actions", path)
    if target.ndim not in (2, 3) or target.shape[0] == 0 or target.shape[-1] == 0:
        raise DataError(
            f"{path}: 'target_actions' must be (N, D) or (N, H, D) with N, D >= 1, got "
            f"shape {target.shape}"
        )
    out: dict[str, np.ndarray] = {"target_actions": target}
    for key in ("pred_actions", "pred_tokens"):
        if key in arrays:
            a = _numeric(arrays[key], key, path)
            if a.shape != target.shape:
                raise DataError(
                    f"{path}: {key!r} has shape {a.shape}; it must match 'target_actions' "
                    f"{target.shape}"
                )
            out[key] = a
    if "pred_tokens" in out:
        tokens = out["pred_tokens"]
        if np.any(tokens != np.round(tokens)):
            raise DataError(f"{path}: 'pred_tokens' must hold integer bin indices")
        out["pred_tokens"] = tokens.astype(np.int64)
    if "logits" in arrays:
        logits = _numeric(arrays["logits"], "logits", path)
        if logits.shape[:-1] != target.shape or logits.ndim != target.ndim + 1:
            raise DataError(
                f"{path}: 'logits' has shape {logits.shape}; expected {target.shape} + (bins,)"
            )
        out["logits"] = logits
    out.update(_labels_mask_names(arrays, target, path))
    return out, warnings


def prediction_tokenizer(
    kind: str = "uniform",
    bins: int | None = None,
    low: float | None = None,
    high: float | None = None,
) -> ActionTokenizer:
    """The action tokenizer that scores a predictions file.

    ``"uniform"``: ``bins`` (default 256) equal cells over ``[low, high]`` (default
    [-1, 1]). ``"openvla"``: OpenVLA's tokenizer (`ActionTokenizer.openvla`): 256
    edges over [-1, 1] unless ``bins``/``low``/``high`` say otherwise.
    """
    if kind not in ("uniform", "openvla"):
        raise UsageError(f"--tokenizer must be 'uniform' or 'openvla', got {kind!r}")
    lo = -1.0 if low is None else float(low)
    hi = 1.0 if high is None else float(high)
    n = 256 if bins is None else bins
    return ActionTokenizer(n_bins=n, low=lo, high=hi, scheme=kind)  # type: ignore[arg-type]


def score_predictions(path: str | Any, tokenizer: ActionTokenizer) -> dict[str, Any]:
    """`vla-eval offline --predictions FILE.npz`: metrics of another model's predictions.

    Returns:
        The ``vla-eval/offline/1`` result without provenance, with ``warnings``.
    """
    arrays, warnings = load_predictions(path)
    target = arrays["target_actions"]
    if "pred_tokens" in arrays:
        tokens = arrays["pred_tokens"]
        if tokens.min() < 0 or tokens.max() >= tokenizer.n_bins:
            raise DataError(
                f"{path}: 'pred_tokens' range {int(tokens.min())}..{int(tokens.max())} is outside "
                f"0..{tokenizer.n_bins - 1}; pass --bins to match the model's bins (bin indices, "
                "not vocabulary ids)"
            )
    if "logits" in arrays and arrays["logits"].shape[-1] != tokenizer.n_bins:
        raise DataError(
            f"{path}: 'logits' have {arrays['logits'].shape[-1]} bins but the tokenizer has "
            f"{tokenizer.n_bins}; pass --bins {arrays['logits'].shape[-1]}"
        )
    outside = float(np.mean((target < tokenizer.low) | (target > tokenizer.high)))
    if outside > 0:
        warnings.append(
            f"{100 * outside:.1f}% of target_actions lie outside [{tokenizer.low:g}, "
            f"{tokenizer.high:g}] and fall into the end bins; normalise the actions or pass "
            "--low/--high"
        )
    d = target.shape[-1]
    names = arrays.get("dim_names")
    metrics = OfflineMetrics(tokenizer, dim_names=None if names is None else list(names))
    splits = arrays.get("split")
    groups = (
        [(None, slice(None))] if splits is None else [(s, splits == s) for s in np.unique(splits)]
    )
    by_split: dict[str, Any] = {}
    for split, rows in groups:
        m = OfflineMetrics(tokenizer, dim_names=metrics.dim_names)
        m.update(
            target[rows],
            pred_actions=arrays["pred_actions"][rows] if "pred_actions" in arrays else None,
            pred_tokens=arrays["pred_tokens"][rows] if "pred_tokens" in arrays else None,
            logits=arrays["logits"][rows] if "logits" in arrays else None,
            task=arrays["task"][rows] if "task" in arrays else None,
            split=split,
            mask=arrays["mask"][rows] if "mask" in arrays else None,
        )
        if split is not None:
            detail = m.compute()
            by_split[str(split)] = {
                k: detail[k] for k in ("per_dim", "per_chunk_step", "dispersion_ratio")
            }
        metrics.merge(m)
    result = {
        "source": str(path),
        "metrics": metrics.compute(),
        "by_split": by_split,
        "traces": [],
        "tokenizer": tokenizer_info(tokenizer),
    }
    keys = sorted(k for k in arrays if k != "dim_names")
    return {
        "schema": SCHEMA,
        "kind": "predictions",
        "data": {
            "kind": "predictions",
            "path": str(path),
            "keys": keys,
            "samples": int(target.shape[0]),
            "action_dim": d,
        },
        "seeds": {},
        "results": [result],
        "warnings": warnings,
    }


# --- helpers ----------------------------------------------------------------------------------


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, refusing pickled objects; errors name the file and key."""
    from vla_eval.inputs import read_npz

    if not path.exists() and not path.is_symlink():
        raise UsageError(f"predictions file not found: {path}")
    # Headers are checked before any array is allocated; object arrays are refused.
    return read_npz(path, str(path))


def _labels_mask_names(
    arrays: dict[str, np.ndarray], target: np.ndarray, path: Path
) -> dict[str, np.ndarray]:
    """The optional ``task``, ``split``, ``mask`` and ``dim_names`` arrays, validated."""
    out: dict[str, np.ndarray] = {}
    n = target.shape[0]
    for key in ("task", "split"):
        if key in arrays:
            labels = arrays[key]
            if labels.shape != (n,):
                raise DataError(
                    f"{path}: {key!r} must have one entry per sample ({n},), got {labels.shape}"
                )
            labels = decode_labels(labels, str(path), key)
            if labels.dtype.kind not in "Uiub":
                raise DataError(f"{path}: {key!r} must hold strings or integers")
            out[key] = labels.astype(str)
    if "mask" in arrays:
        mask = arrays["mask"]
        h = target.shape[1] if target.ndim == 3 else 1
        if mask.shape not in ((n,), (n, h)):
            raise DataError(f"{path}: 'mask' must be ({n},) or ({n}, {h}), got {mask.shape}")
        if mask.dtype.kind != "b" and not np.all(np.isin(mask, (0, 1))):
            raise DataError(f"{path}: 'mask' must hold booleans (or 0/1)")
        out["mask"] = mask.astype(bool)
        if not out["mask"].any():
            raise DataError(f"{path}: 'mask' marks every entry as padding; nothing to score")
    if "dim_names" in arrays:
        names = arrays["dim_names"]
        d = target.shape[-1]
        if names.shape != (d,) or names.dtype.kind not in "US":
            raise DataError(f"{path}: 'dim_names' must be {d} strings, got {names.shape}")
        out["dim_names"] = decode_labels(names, str(path), "dim_names").astype(str)
    return out


def _numeric(a: np.ndarray, key: str, path: Any) -> np.ndarray:
    if a.dtype.kind not in "fiub":
        raise DataError(f"{path}: {key!r} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise DataError(f"{path}: {key!r} contains NaN or infinite values")
    return a


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:120] or type(exc).__name__).rstrip(".")
