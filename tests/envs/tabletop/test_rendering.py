"""Tests for drawing tabletop scenes: what each pixel shows, batched and one by one."""

from __future__ import annotations

import numpy as np

from vla_eval.envs import tabletop as tt

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
# Expected RGB values, written out from the documented palette.
RED, BLUE, YELLOW = (230, 40, 40), (50, 100, 240), (240, 220, 40)
TABLE, WHITE, LIQUID = (52, 52, 60), (245, 245, 245), (170, 225, 255)


def one_scene():
    """A hand-built table: red block, blue bowl, full yellow cup, gripper bottom-centre."""
    scene = tt.Scene.empty(1, 3)
    scene.kind[0] = [tt.BLOCK, tt.BOWL, tt.CUP]
    scene.colour[0] = [COLOURS.index("red"), COLOURS.index("blue"), COLOURS.index("yellow")]
    scene.pos[0] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75)]
    scene.full[0, 2] = True
    scene.grip[0] = (0.75, 0.75)
    return scene


def test_render_paints_objects_at_their_positions():
    img = tt.render(one_scene())[0]
    # Pixel (row, column) = floor(64 * (y, x)).
    assert tuple(img[16, 16]) == RED  # block centre
    assert tuple(img[16 + 4, 16 + 4]) == RED  # block corner (9x9 square)
    assert tuple(img[16 + 6, 16 + 6]) == TABLE  # just outside it
    assert tuple(img[16, 48]) == TABLE  # bowl centre is hollow
    assert tuple(img[16, 48 + 6]) == BLUE  # bowl ring, radius 4.6-7.6 px
    assert tuple(img[48, 16]) == LIQUID  # full cup: liquid inside
    assert tuple(img[48, 16 + 3]) == YELLOW  # cup wall
    assert tuple(img[5, 5]) == TABLE  # empty corner
    assert tuple(img[48, 48 + 8]) == WHITE  # open gripper's right finger (7.5-9.5 px)
    assert tuple(img[48, 48 - 8]) == WHITE  # left finger


def test_gripper_state_is_visible():
    scene = one_scene()
    open_img = tt.render(scene)[0]
    scene.closed[0] = True
    closed_img = tt.render(scene)[0]
    # Closed fingers sit 5-7 px from the centre, open ones 7.5-9.5 px.
    assert tuple(open_img[48, 48 + 9]) == WHITE and tuple(closed_img[48, 48 + 9]) == TABLE
    assert tuple(closed_img[48, 48 + 6]) == WHITE and tuple(open_img[48, 48 + 6]) == TABLE
    # And through the state vector: x, y, closed, holding, tilt.
    np.testing.assert_allclose(scene.state_vector()[0], [0.75, 0.75, 1, 0, 0])


def test_block_in_bowl_and_poured_bowl_are_visible():
    scene = one_scene()
    scene.pos[0, 0] = scene.pos[0, 1]
    scene.on[0, 0] = 1
    img = tt.render(scene)[0]
    assert tuple(img[16, 48]) == RED  # block drawn inside the bowl
    assert tuple(img[16, 48 + 6]) == BLUE  # ring still visible around it
    scene.on[0, 0] = -1
    scene.pos[0, 0] = (0.5, 0.5)
    scene.full[0, 1] = True
    assert tuple(tt.render(scene)[0][16, 48]) == LIQUID


def test_batched_render_equals_one_by_one():
    env = tt.TabletopEnv()
    obs = env.reset(np.arange(6), [t.key for t in env.tasks[:6]])
    for i, seed in enumerate(range(6)):
        single = tt.TabletopEnv().reset([seed], env.tasks[i])
        np.testing.assert_array_equal(single["image"][0], obs["image"][i])
