"""Tests for the built-in tabletop world: dynamics, rendering, splits, determinism, expert."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.envs import Env, Task
from vla_eval.envs import tabletop as tt
from vla_eval.errors import UsageError

FAMILIES = ("pick", "place", "stack", "pour")
# Written out by hand from the documented rule: opposite colours in
# (red, green, blue, yellow, purple, orange) are held out, in either order.
HELD_OUT = {
    ("red", "yellow"),
    ("yellow", "red"),
    ("green", "purple"),
    ("purple", "green"),
    ("blue", "orange"),
    ("orange", "blue"),
}
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
# Expected RGB values, written out from the documented palette.
RED, BLUE, YELLOW = (230, 40, 40), (50, 100, 240), (240, 220, 40)
TABLE, WHITE, LIQUID = (52, 52, 60), (245, 245, 245), (170, 225, 255)


def run_expert(env, seeds, tasks, quality=None):
    """Roll the scripted expert to the end; return the final info."""
    env.reset(seeds, tasks)
    expert = tt.ScriptedExpert(quality or tt.DemoQuality())
    expert.reset(env, seeds)
    done = np.zeros(len(seeds), bool)
    info = None
    while not done.all():
        _, _, done, info = env.step(expert.act(env))
    return info


def one_scene():
    """A hand-built table: red block, blue bowl, full yellow cup, gripper bottom-centre."""
    scene = tt.Scene.empty(1, 3)
    scene.kind[0] = [tt.BLOCK, tt.BOWL, tt.CUP]
    scene.colour[0] = [COLOURS.index("red"), COLOURS.index("blue"), COLOURS.index("yellow")]
    scene.pos[0] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75)]
    scene.full[0, 2] = True
    scene.grip[0] = (0.75, 0.75)
    return scene


def test_env_satisfies_the_protocol_and_lists_eight_tasks():
    env = tt.TabletopEnv()
    assert isinstance(env, Env)
    assert env.action_dim == 7 and env.name == "tabletop" and env.version
    keys = sorted(t.key for t in env.tasks)
    assert keys == sorted(f"{f}/{s}" for f in FAMILIES for s in ("seen", "unseen"))
    assert all(isinstance(t, Task) and t.name == t.family for t in env.tasks)


def test_observation_shapes_and_types():
    env = tt.TabletopEnv()
    obs = env.reset(np.arange(5), "place/seen")
    assert obs["image"].shape == (5, 64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (5, tt.STATE_DIM) and obs["state"].dtype == np.float32
    assert len(obs["instruction"]) == 5 and all(isinstance(s, str) for s in obs["instruction"])


# --- rendering ----------------------------------------------------------------------


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


# --- dynamics by hand -------------------------------------------------------------------


def test_move_tilt_and_clip_by_hand():
    env = tt.TabletopEnv()
    env.reset([0], "pick/seen")
    start = env.scene.grip.copy()
    a = np.zeros((1, 7))
    a[0, 0], a[0, 1], a[0, 5], a[0, 6] = 0.5, -3.0, 2.0, -1.0  # dy and dyaw are clipped to 1
    obs, *_ = env.step(a)
    np.testing.assert_allclose(env.scene.grip[0], start[0] + [0.5 * 0.08, -1.0 * 0.08])
    assert env.scene.tilt[0] == pytest.approx(0.4)
    np.testing.assert_allclose(obs["state"][0, :2], env.scene.grip[0], rtol=1e-6)
    assert obs["state"][0, 4] == pytest.approx(0.4 / 1.6)
    a[0, 0:2] = 1.0
    for _ in range(30):
        env.step(a)
    assert env.scene.grip.max() <= 0.96 + 1e-12  # the gripper stays over the table


def test_grasp_carry_release_into_bowl_by_hand():
    env = tt.TabletopEnv()
    env.reset([1], "place/seen")
    scene = env.scene
    scene.pos[0] = [(0.3, 0.3), (0.7, 0.3), (0.3, 0.7)]
    scene.grip[0] = (0.3 + 0.05, 0.3)  # within the 0.08 grasp radius of the block
    close = np.array([[0, 0, 0, 0, 0, 0, 1.0]])
    env.step(close)
    assert scene.held[0] == 0 and scene.closed[0]
    carry = np.array([[1.0, 0, 0, 0, 0, 0, 1.0]])
    for _ in range(5):  # 5 * 0.08 = 0.4 to the right
        _, _, done, _ = env.step(carry)
    np.testing.assert_allclose(scene.pos[0, 0], (0.75, 0.3))  # the block follows the gripper
    _, reward, done, info = env.step(np.array([[0, 0, 0, 0, 0, 0, -1.0]]))
    assert scene.held[0] == -1 and scene.on[0, 0] == 1  # landed in the bowl
    np.testing.assert_allclose(scene.pos[0, 0], (0.7, 0.3))  # settled at its centre
    assert info["success"][0] and done[0] and reward[0] == 1.0


def test_an_early_close_still_grasps_on_arrival():
    env = tt.TabletopEnv()
    env.reset([1], "pick/seen")
    env.scene.pos[0] = [(0.5, 0.3), (0.8, 0.8), (0.2, 0.8)]
    env.scene.grip[0] = (0.5, 0.5)
    down_closed = np.array([[0, -1.0, 0, 0, 0, 0, 1.0]])  # up the image, gripper closed
    env.step(down_closed)  # 0.12 away: too far, nothing held
    assert env.scene.held[0] == -1 and env.scene.closed[0]
    info = env.step(down_closed)[3]  # 0.04 away: the closed, empty gripper takes it
    assert env.scene.held[0] == 0 and info["success"][0]


def test_missed_grasp_holds_nothing():
    env = tt.TabletopEnv()
    env.reset([1], "pick/seen")
    env.scene.pos[0] = [(0.2, 0.2), (0.8, 0.2), (0.2, 0.8)]
    env.scene.grip[0] = (0.5, 0.5)
    info = env.step(np.array([[0, 0, 0, 0, 0, 0, 1.0]]))[3]
    assert env.scene.held[0] == -1 and env.scene.closed[0] and not info["success"][0]


def test_pour_needs_tilt_over_the_named_bowl():
    env = tt.TabletopEnv()
    env.reset([2, 2], "pour/seen")
    scene = env.scene
    for i in range(2):
        scene.pos[i] = [(0.3, 0.3), (0.7, 0.3), (0.3, 0.7)]
        scene.held[i], scene.closed[i] = 0, True
    scene.grip[0] = (0.7, 0.3)  # over the named bowl
    scene.grip[1] = (0.3, 0.7)  # over the other bowl
    tilt = np.zeros((2, 7))
    tilt[:, 5], tilt[:, 6] = 1.0, 1.0
    env.step(tilt)  # 0.4 rad
    _, _, done, info = env.step(tilt)  # 0.8 rad: not yet
    assert not done.any() and scene.full[:, 0].all()
    _, reward, done, info = env.step(tilt)  # 1.2 rad >= 1.0: pours
    assert not scene.full[:, 0].any()
    assert info["success"].tolist() == [True, False]
    assert done.tolist() == [True, True]  # pouring into the wrong bowl ends the episode
    assert reward.tolist() == [1.0, 0.0]


def test_stack_on_the_named_block():
    env = tt.TabletopEnv()
    env.reset([3], "stack/seen")
    scene = env.scene
    scene.pos[0] = [(0.3, 0.3), (0.7, 0.3), (0.3, 0.7)]
    scene.held[0], scene.closed[0] = 0, True
    scene.grip[0] = (0.68, 0.31)
    info = env.step(np.array([[0, 0, 0, 0, 0, 0, -1.0]]))[3]
    assert scene.on[0, 0] == 1 and info["success"][0]
    np.testing.assert_allclose(scene.pos[0, 0], (0.7, 0.3))


def test_timeout_and_done_envs_ignore_actions():
    env = tt.TabletopEnv()
    env.reset([4], "pick/seen")
    still = np.zeros((1, 7))
    still[0, 6] = -1
    for step in range(1, 25):
        _, reward, done, info = env.step(still)
        assert done[0] == (step >= 24)
    assert info["timeout"][0] and not info["success"][0] and reward[0] == 0
    grip = env.scene.grip.copy()
    last = env.step(still)[0]["image"]
    obs, _, done, info = env.step(np.ones((1, 7)))
    np.testing.assert_array_equal(env.scene.grip, grip)
    np.testing.assert_array_equal(obs["image"], last)
    assert done[0] and info["steps"][0] == 24


def test_a_finished_env_keeps_its_frame_while_others_move():
    env = tt.TabletopEnv()
    env.reset([6, 7], ["pick/seen", "pour/seen"])
    expert = tt.ScriptedExpert()
    expert.reset(env, [6, 7])
    frames, done = [], np.zeros(2, bool)
    while not done.all():
        obs, _, done, _ = env.step(expert.act(env))
        frames.append((done.copy(), obs["image"]))
    end = next(i for i, (d, _) in enumerate(frames) if d[0])
    assert not frames[end][0][1]  # pick finished first, pour still running
    for _, image in frames[end:]:
        np.testing.assert_array_equal(image[0], frames[end][1][0])
    np.testing.assert_array_equal(tt.render(env.scene.take(np.array([1])))[0], frames[-1][1][1])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), task=st.integers(0, 7), actions=st.data())
def test_random_actions_keep_the_world_valid(seed, task, actions):
    env = tt.TabletopEnv()
    env.reset([seed], env.tasks[task])
    for _ in range(8):
        a = actions.draw(st.lists(st.floats(-3, 3), min_size=7, max_size=7))
        obs, reward, _, _ = env.step(np.array([a]))
        assert np.isfinite(obs["state"]).all()
        assert (obs["state"][:, :2] >= 0.04 - 1e-6).all() and (
            obs["state"][:, :2] <= 0.96 + 1e-6
        ).all()
        assert 0 <= obs["state"][0, 4] <= 1
        assert reward[0] in (0.0, 1.0)
        held = env.scene.held[0]
        if held >= 0:
            np.testing.assert_allclose(env.scene.pos[0, held], env.scene.grip[0])


# --- determinism -----------------------------------------------------------------------


def test_same_seeds_give_identical_episodes_whatever_the_batch():
    env = tt.TabletopEnv()
    tasks = [t.key for t in env.tasks]
    seeds = np.arange(100, 108)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (10, 8, 7))
    first = [env.reset(seeds, tasks)["image"]]
    first += [env.step(a)[0]["image"] for a in actions]
    second = [env.reset(seeds, tasks)["image"]]
    second += [env.step(a)[0]["image"] for a in actions]
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
    # Env 3 alone gives exactly what it gave inside the batch.
    alone = tt.TabletopEnv()
    images = [alone.reset(seeds[3:4], tasks[3])["image"]]
    images += [alone.step(a[3:4])[0]["image"] for a in actions]
    np.testing.assert_array_equal(np.stack(images)[:, 0], np.stack(first)[:, 3])
    # Different seeds give different tables.
    other = env.reset(seeds + 1, tasks)["image"]
    assert not np.array_equal(other, first[0])


# --- splits ------------------------------------------------------------------------------


def _colours_in(instruction):
    return [w for w in instruction.split() if w in COLOURS]


@pytest.mark.parametrize("family", FAMILIES)
def test_seen_and_unseen_are_disjoint(family):
    env = tt.TabletopEnv()
    seen, unseen = env.task(f"{family}/seen"), env.task(f"{family}/unseen")
    all_pairs = {(a, b) for a in COLOURS for b in COLOURS if a != b}
    assert set(unseen.spec.colour_pairs) == HELD_OUT
    assert set(seen.spec.colour_pairs) == all_pairs - HELD_OUT
    assert not set(seen.spec.phrasings) & set(unseen.spec.phrasings)
    assert len(seen.spec.phrasings) >= 3 and len(unseen.spec.phrasings) >= 2

    seeds = np.arange(200)
    (x0, x1), (y0, y1) = (0.66, 0.88), (0.66, 0.88)
    for task in (seen, unseen):
        obs = env.reset(seeds, task)
        pos = env.scene.pos
        inside = (
            (pos[..., 0] >= x0) & (pos[..., 0] <= x1) & (pos[..., 1] >= y0) & (pos[..., 1] <= y1)
        )
        for i, text in enumerate(obs["instruction"]):
            # The pair is (manipulated, reference): the named colours, or for pick the
            # named colour and the first distractor's.
            a, b = COLOURS[env.scene.colour[i, 0]], COLOURS[env.scene.colour[i, 1]]
            assert text in {p.format(a=a, b=b) for p in task.spec.phrasings}, text
            assert a in _colours_in(text)
            assert ((a, b) in HELD_OUT) == (task.split == "unseen")
        if task.split == "seen":
            assert not inside.any()
        else:
            assert inside[:, 0].all() and not inside[:, 1:].any()


def test_start_objects_do_not_overlap():
    env = tt.TabletopEnv()
    env.reset(np.arange(300), "place/unseen")
    pos = env.scene.pos
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (np.linalg.norm(pos[:, a] - pos[:, b], axis=1) >= 0.25).all()


# --- the scripted expert ---------------------------------------------------------------------


@pytest.mark.parametrize("split", ["seen", "unseen"])
@pytest.mark.parametrize("family", FAMILIES)
def test_expert_solves_every_family_on_both_splits(family, split):
    env = tt.TabletopEnv()
    info = run_expert(env, np.arange(100), f"{family}/{split}")
    assert info["success"].mean() >= 0.98
    assert info["steps"].max() <= tt.MAX_STEPS[family]


def test_noisy_idle_and_jerky_experts_still_succeed_failing_ones_fail():
    env = tt.TabletopEnv()
    tasks = [t.key for t in env.tasks] * 25
    seeds = np.arange(len(tasks))
    noisy = tt.DemoQuality(noise=0.1, idle=0.5, jerky=0.5)
    assert run_expert(env, seeds, tasks, noisy)["success"].mean() >= 0.98
    failing = tt.DemoQuality(failed=1.0)
    assert run_expert(env, seeds, tasks, failing)["success"].sum() == 0


def test_expert_actions_are_smooth_straight_moves():
    env = tt.TabletopEnv()
    env.reset([5], "place/seen")
    expert = tt.ScriptedExpert()
    expert.reset(env, [5])
    target = env.scene.pos[0, 0].copy()
    start = env.scene.grip[0].copy()
    a = expert.act(env)
    direction = (target - start) / np.linalg.norm(target - start)
    np.testing.assert_allclose(a[0, :2] / np.linalg.norm(a[0, :2]), direction, atol=1e-9)
    assert np.abs(a[0, :2]).max() == pytest.approx(1.0) or np.linalg.norm(target - start) < 0.08
    assert a[0, 2:5].tolist() == [0, 0, 0]


# --- bad input --------------------------------------------------------------------------------


def test_bad_input_is_a_usage_error():
    env = tt.TabletopEnv()
    with pytest.raises(UsageError, match="reset"):
        env.step(np.zeros((1, 7)))
    with pytest.raises(UsageError, match="unknown tabletop task"):
        env.reset([0], "juggle/seen")
    with pytest.raises(UsageError, match="non-negative"):
        env.reset([-1], "pick/seen")
    with pytest.raises(UsageError, match="2 tasks for 3 seeds"):
        env.reset([0, 1, 2], ["pick/seen", "pour/seen"])
    with pytest.raises(UsageError, match="non-empty"):
        env.reset([], "pick/seen")
    env.reset([0, 1], "pick")  # a bare family means its seen split
    with pytest.raises(UsageError, match="shape"):
        env.step(np.zeros((2, 6)))
    with pytest.raises(UsageError, match="NaN"):
        env.step(np.full((2, 7), np.nan))
    with pytest.raises(UsageError, match="probability"):
        tt.DemoQuality(idle=1.5)
    with pytest.raises(UsageError, match="not a task"):
        env.reset([0], Task("pick", "pick", "seen"))
