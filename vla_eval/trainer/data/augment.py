"""Augmentation of robot batches: random shifts, colour jitter and action noise.

Each helper works on a numpy batch with an explicit ``np.random.Generator``, so a run
is reproducible and resumable. numpy only; must not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_eval.errors import UsageError


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
