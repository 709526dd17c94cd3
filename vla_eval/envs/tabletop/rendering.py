"""Drawing tabletop scenes as 64x64 RGB images, with no Python loop over environments.

Small sprites are painted into palette images (one byte per pixel) by index
arithmetic, and the colours are looked up once at the end. This module depends on
numpy and `envs.tabletop.world` only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from vla_eval.envs.tabletop.world import (
    BLOCK,
    BOWL,
    COLOUR_RGB,
    CUP,
    EMPTY,
    EMPTY_CUP_RGB,
    GRIPPER_RGB,
    IMAGE_SIZE,
    LIQUID_RGB,
    TABLE_RGB,
    WRIST_MAX,
    Scene,
)

_SPRITE = 17  # object sprite side (pixels), centre at 8
_GRIP_SPRITE = 25  # gripper sprite side, centre at 12
_PAD = _GRIP_SPRITE // 2 + 1
_N_ANGLES = 17  # tilt quantisation for drawing cups and the gripper
_STACK_SHIFT = -2  # a block on a block is drawn up-left, so the base peeks out


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    c = side // 2
    v, u = np.mgrid[-c : c + 1, -c : c + 1].astype(np.float64)
    return u, v


def _rotate(u: np.ndarray, v: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    # Coordinates of each pixel in the frame of a shape tilted clockwise by `angle`.
    c, s = np.cos(angle), np.sin(angle)
    return c * u + s * v, -s * u + c * v


@lru_cache(maxsize=1)
def _sprites() -> tuple[np.ndarray, np.ndarray]:
    """Sprite masks: objects (2 + _N_ANGLES, 17, 17) and gripper (2, _N_ANGLES, 25, 25).

    Object masks hold 0 (transparent), 1 (body colour) or 2 (interior: liquid or the
    empty inside of a cup). Object index 0 is a block, 1 a bowl, 2 + a a cup at tilt
    angle number a. Gripper masks are indexed [closed, angle] and are 0/1.
    """
    u, v = _grid(_SPRITE)
    objects = np.zeros((2 + _N_ANGLES, _SPRITE, _SPRITE), np.uint8)
    objects[0][(np.abs(u) <= 4) & (np.abs(v) <= 4)] = 1
    r = np.hypot(u, v)
    objects[1][(r > 4.6) & (r <= 7.6)] = 1
    objects[1][r <= 4.6] = 2
    for a, angle in enumerate(np.linspace(0.0, WRIST_MAX, _N_ANGLES)):
        cu, cv = _rotate(u, v, angle)
        body = (np.abs(cu) <= 4.0) & (np.abs(cv) <= 6.0)
        inside = (np.abs(cu) <= 2.0) & (cv >= -6.0) & (cv <= 4.0)  # open at the top
        objects[2 + a][body] = 1
        objects[2 + a][inside] = 2
    gu, gv = _grid(_GRIP_SPRITE)
    gripper = np.zeros((2, _N_ANGLES, _GRIP_SPRITE, _GRIP_SPRITE), np.uint8)
    for closed, (inner, outer) in enumerate(((7.5, 9.5), (5.0, 7.0))):
        for a, angle in enumerate(np.linspace(0.0, WRIST_MAX, _N_ANGLES)):
            cu, cv = _rotate(gu, gv, angle)
            fingers = (np.abs(cu) >= inner) & (np.abs(cu) <= outer) & (cv >= -6.0) & (cv <= 4.0)
            palm = (np.abs(cu) <= outer) & (cv >= -8.0) & (cv <= -6.0)
            stem = (np.abs(cu) <= 1.0) & (cv >= -11.0) & (cv <= -8.0)
            gripper[closed, a][fingers | palm | stem] = 1
    return objects, gripper


def _angle_index(tilt: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(tilt, 0.0, WRIST_MAX) / WRIST_MAX * (_N_ANGLES - 1)).astype(np.intp)


def _to_pixel(xy: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(xy * IMAGE_SIZE), 0, IMAGE_SIZE - 1).astype(np.intp)


def _paint(
    canvas: np.ndarray,
    centre: np.ndarray,
    masks: np.ndarray,
    body: np.ndarray,
    inner: np.ndarray,
) -> None:
    """Paint one sprite per image onto the padded palette canvas (N, H+2P, W+2P) in place.

    Args:
        canvas: uint8 palette indices (see `_PALETTE`), padded by ``_PAD`` on each side.
        centre: (N, 2) pixel (column, row) of each sprite centre.
        masks: (N, s, s) uint8 sprite masks (0 transparent, 1 body, 2 interior).
        body, inner: (N,) uint8 palette indices; an ``inner`` of 0 leaves the interior
            transparent.
    """
    n, side = masks.shape[0], masks.shape[1]
    width = canvas.shape[2]
    offsets = np.arange(side) - side // 2
    rows = (centre[:, 1] + _PAD)[:, None] + offsets  # (N, s)
    cols = (centre[:, 0] + _PAD)[:, None] + offsets
    flat = canvas.reshape(-1)
    index = (np.arange(n) * canvas.shape[1] * width)[:, None, None] + rows[:, :, None] * width
    index = index + cols[:, None, :]  # (N, s, s) into the flattened canvas
    patch = flat[index]
    patch = np.where(masks == 1, body[:, None, None], patch)
    patch = np.where((masks == 2) & (inner > 0)[:, None, None], inner[:, None, None], patch)
    flat[index] = patch


# Palette indices of the palette canvas: 0 table, 1 gripper, 2 liquid, 3 empty cup,
# then the object colours in `COLOURS` order.
_TABLE, _GRIPPER, _LIQUID, _EMPTY_CUP, _FIRST_COLOUR = 0, 1, 2, 3, 4
_PALETTE = np.vstack([TABLE_RGB, GRIPPER_RGB, LIQUID_RGB, EMPTY_CUP_RGB, COLOUR_RGB])


def render(scene: Scene) -> np.ndarray:
    """Draw every table as a (N, 64, 64, 3) uint8 RGB image.

    Bowls are drawn first, then objects on the table or in bowls, then blocks stacked
    on blocks (shifted up-left so the base shows), then the held object, then the
    gripper (open: wide fingers; closed: narrow fingers), tilted with the wrist.
    Painting works on palette indices (one byte per pixel) and looks the colours up
    once at the end, which is several times faster than painting RGB.
    """
    objects, gripper = _sprites()
    n, k = scene.kind.shape
    side = IMAGE_SIZE + 2 * _PAD
    canvas = np.zeros((n, side, side), np.uint8)
    rows = np.arange(n)
    held_mask = (scene.held[:, None] == np.arange(k)[None, :]) & (scene.held[:, None] >= 0)
    on_kind = np.take_along_axis(scene.kind, np.maximum(scene.on, 0).astype(np.intp), axis=1)
    stacked = (scene.on >= 0) & (on_kind == BLOCK)
    layer = np.where(scene.kind == BOWL, 0, np.where(stacked, 2, 1))
    layer = np.where(held_mask, 3, layer)
    layer = np.where(scene.kind == EMPTY, -1, layer)
    order = np.argsort(layer * k + np.arange(k)[None, :], axis=1)
    tilt_index = _angle_index(scene.tilt)
    for j in range(k):
        slot = order[:, j]
        kind = scene.kind[rows, slot]
        is_cup = kind == CUP
        sprite = np.where(kind == BOWL, 1, 0)
        sprite = np.where(is_cup, np.where(scene.held == slot, 2 + tilt_index, 2), sprite)
        masks = objects[sprite]
        masks[kind == EMPTY] = 0
        centre = _to_pixel(scene.pos[rows, slot])
        centre += np.where(stacked[rows, slot], _STACK_SHIFT, 0)[:, None]
        body = (scene.colour[rows, slot] + _FIRST_COLOUR).astype(np.uint8)
        full = scene.full[rows, slot]
        inner = np.where(full, _LIQUID, np.where(is_cup, _EMPTY_CUP, 0)).astype(np.uint8)
        _paint(canvas, centre, masks, body, inner)
    grip_masks = gripper[scene.closed.astype(np.intp), tilt_index]
    white = np.full(n, _GRIPPER, np.uint8)
    _paint(canvas, _to_pixel(scene.grip), grip_masks, white, np.zeros(n, np.uint8))
    # np.take is several times faster than fancy indexing for this palette lookup.
    return np.take(_PALETTE, canvas[:, _PAD : _PAD + IMAGE_SIZE, _PAD : _PAD + IMAGE_SIZE], axis=0)
