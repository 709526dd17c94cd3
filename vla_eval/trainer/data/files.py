"""Datasets on disk: `save_dataset` writes a compressed ``.npz``, `load_dataset` reads it.

Files are written atomically and read with ``allow_pickle=False``, so a dataset file
can never execute code; the ``schema`` field says which kind of dataset a file holds.
numpy only; must not import torch.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from vla_eval.errors import DataError, UsageError
from vla_eval.results import atomic_write
from vla_eval.trainer.data.datasets import DemoDataset, WebDataset

DEMOS_SCHEMA = "vla-eval/demos/1"
WEB_SCHEMA = "vla-eval/web-vqa/1"


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
    return atomic_write(path, lambda f: np.savez_compressed(f, schema=np.array(schema), **arrays))


def load_dataset(path: str | Path) -> DemoDataset | WebDataset:
    """Read a dataset written by `save_dataset` (``allow_pickle=False``: nothing executes)."""
    from vla_eval.inputs import read_npz

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"no dataset file at {path}")
    # A regular .npz only; headers checked before allocating; object arrays refused.
    arrays = read_npz(path, str(path))
    schema = arrays.pop("schema", np.array(""))
    schema = str(schema) if schema.dtype.kind == "U" and schema.ndim == 0 else repr(schema)
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
