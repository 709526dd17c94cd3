"""Gymnasium observations as the toolkit's policies see them.

A batch of observations reaches the policy as the environment gives them, nested
dictionaries flattened with ``/`` (a bare array is ``observation``), each batched on
axis 0, plus the toolkit's normalised keys, which replace raw keys of the same name:

- ``image``: the main camera, uint8 (N, H, W, 3): the first (by key) entry that is a
  uint8 Box of shape (H, W, 3); with several cameras also ``image/<camera>`` for each,
  the camera named by the last part of its key (``pixels/top`` and
  ``observation.images.top`` are ``top``).
- ``state``: float32 (N, S) from the first of ``agent_pos``, ``state``,
  ``observation.state`` (a key or its last part) that is a 1-D Box, else from a bare 1-D
  Box observation.
- ``instruction``: list[str] from a text entry named ``instruction``,
  ``language_instruction``, ``task_description`` or ``task``.

Success values in ``info`` are read here too (`truthy`). The layout is read once from
the observation space. numpy here; the space classes are
recognised by their attributes, so this module imports no Gymnasium.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla_eval.errors import UsageError

STATE_NAMES = ("agent_pos", "state", "observation.state")
TEXT_NAMES = ("instruction", "language_instruction", "task_description", "task")
BARE_KEY = "observation"


@dataclass(frozen=True)
class ObsLayout:
    """Where the normalised keys come from, by flattened key.

    Attributes:
        cameras: (key, camera name) of every image entry, the main camera first.
        state: the key of the state entry, if any.
        text: the key of the instruction entry, if any.
    """

    cameras: tuple[tuple[str, str], ...] = ()
    state: str | None = None
    text: str | None = None


def flat_spaces(space: Any, prefix: str = "") -> dict[str, Any]:
    """A (nested) Dict space as ``{"a/b": leaf space}``; any other space is ``observation``."""
    children = getattr(space, "spaces", None)
    if isinstance(children, dict):
        out: dict[str, Any] = {}
        for key, child in children.items():
            out.update(flat_spaces(child, f"{prefix}{key}/"))
        return out
    return {prefix[:-1] if prefix else BARE_KEY: space}


def flatten(obs: Any, prefix: str = "") -> dict[str, Any]:
    """A (nested) dict of batched entries as ``{"a/b": entry}``; a bare array is ``observation``."""
    if isinstance(obs, dict):
        out: dict[str, Any] = {}
        for key, value in obs.items():
            out.update(flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix[:-1] if prefix else BARE_KEY: obs}


def _last_part(key: str) -> str:
    return re.split(r"[/.]", key)[-1]


def _is_image(space: Any) -> bool:
    shape = getattr(space, "shape", None)
    dtype = getattr(space, "dtype", None)
    return shape is not None and len(shape) == 3 and shape[2] == 3 and dtype == np.uint8


def _is_vector(space: Any) -> bool:
    shape = getattr(space, "shape", None)
    dtype = getattr(space, "dtype", None)
    return (
        hasattr(space, "low") and shape is not None and len(shape) == 1 and dtype is not None
    ) and np.dtype(dtype).kind in "biuf"


def _is_text(space: Any) -> bool:
    return type(space).__name__ == "Text"


def read_layout(space: Any) -> ObsLayout:
    """The `ObsLayout` of a single (unbatched) observation space."""
    leaves = flat_spaces(space)
    images = sorted(k for k, s in leaves.items() if _is_image(s))
    names = [_last_part(k) for k in images]
    cameras = tuple(
        (key, name if names.count(name) == 1 else key)
        for key, name in zip(images, names, strict=True)
    )
    state = None
    for wanted in STATE_NAMES:
        found = [k for k, s in leaves.items() if _is_vector(s) and wanted in (k, _last_part(k))]
        if found:
            state = found[0]
            break
    if state is None and list(leaves) == [BARE_KEY] and _is_vector(leaves[BARE_KEY]):
        state = BARE_KEY
    texts = [k for k, s in leaves.items() if _is_text(s) and _last_part(k) in TEXT_NAMES]
    return ObsLayout(cameras, state, texts[0] if texts else None)


def normalise(flat: dict[str, Any], layout: ObsLayout) -> dict[str, Any]:
    """Flattened batched observations plus the normalised keys (see the module docstring)."""
    obs = dict(flat)
    if layout.cameras:
        obs["image"] = np.asarray(flat[layout.cameras[0][0]], dtype=np.uint8)
        if len(layout.cameras) > 1:
            for key, camera in layout.cameras:
                obs[f"image/{camera}"] = np.asarray(flat[key], dtype=np.uint8)
    if layout.state is not None:
        state = np.asarray(flat[layout.state], dtype=np.float32)
        obs["state"] = state.reshape(len(state), -1)
    if layout.text is not None:
        obs["instruction"] = [str(t) for t in flat[layout.text]]
    return obs


def merge_rows(parts: list[tuple[np.ndarray, dict[str, Any]]], n: int) -> dict[str, Any]:
    """Batches of flattened observations for the given rows -> one batch of ``n`` rows.

    Every part must have the same keys, and arrays the same shapes past the batch axis.
    """
    if len(parts) == 1 and np.array_equal(parts[0][0], np.arange(n)):
        return parts[0][1]
    keys = list(parts[0][1])
    out: dict[str, Any] = {}
    for key in keys:
        first = parts[0][1][key]
        if isinstance(first, np.ndarray):
            merged = np.empty((n, *first.shape[1:]), first.dtype)
            for rows, values in parts:
                merged[rows] = values[key]
            out[key] = merged
        else:
            items: list[Any] = [None] * n
            for rows, values in parts:
                for row, item in zip(rows, values[key], strict=True):
                    items[row] = item
            out[key] = items
    return out


def truthy(value: Any, key: str) -> bool:
    """An ``info`` success value (bool, 0/1, a one-element array) as a bool."""
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "biuf":
        raise UsageError(f"info[{key!r}] must be a single true/false value, got {value!r}")
    return bool(array.reshape(()))
