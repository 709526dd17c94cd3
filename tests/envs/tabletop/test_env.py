"""Tests for the tabletop environment: the protocol, dynamics by hand, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.envs import Env, Task
from vla_eval.envs import tabletop as tt
from vla_eval.errors import UsageError

FAMILIES = ("pick", "place", "stack", "pour")


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
    with pytest.raises(UsageError, match="not a task"):
        env.reset([0], Task("pick", "pick", "seen"))
