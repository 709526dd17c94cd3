"""Tests for `MetaWorldEnv`: determinism, step limits, bad input, rendered images.

They need the optional simulator extra (``pip install 'vla-eval[sim]'``); without it
they are reported as skipped with that reason.
"""

from __future__ import annotations

import numpy as np
import pytest

metaworld = pytest.importorskip(
    "metaworld", reason="Meta-World is not installed (pip install 'vla-eval[sim]')"
)

from vla_eval import online  # noqa: E402
from vla_eval.envs import metaworld as mw  # noqa: E402
from vla_eval.errors import UsageError  # noqa: E402

pytestmark = pytest.mark.sim


def test_same_task_and_seed_give_the_same_episode_in_any_batch(env, rollout) -> None:
    a = env.reset([3, 3, 7], ["push-v3", "push-v3", "push-v3"])["state"]
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], a[2])  # another seed, another goal variant
    # The goal (last 3 entries of an MT observation) is the seed's variant's goal.
    np.testing.assert_allclose(a[0, 36:39], env.privileged_state()[0, 36:39])
    s1, n1, traj1 = rollout(env, [3], "push-v3/seen")
    # The same episode again, now in another slot of a batch after other episodes
    # have used the reused simulator instances.
    rollout(env, [5, 9], ["push-v3", "reach-v3/unseen"])
    s2, n2, traj2 = rollout(env, [8, 3], ["push-v3", "push-v3"])
    assert n1[0] == n2[1] and s1[0] == s2[1]
    np.testing.assert_array_equal(traj1[0], traj2[1, : traj1.shape[1]])
    # A fresh environment object gives it too.
    with mw.MetaWorldEnv("MT10", progress=False) as other:
        _, _, traj3 = rollout(other, [3], "push-v3")
    np.testing.assert_array_equal(traj1, traj3)


def test_step_limit_timeout_and_finished_envs_stay_put(env, rollout) -> None:
    with mw.MetaWorldEnv("MT10", max_steps=5, progress=False) as short:
        assert all(t.spec.max_steps == 5 for t in short.tasks)
        obs0 = short.reset([0, 1], "reach-v3")
        for _ in range(5):
            obs, _, done, info = short.step(np.zeros((2, 4)))
        assert done.all() and info["timeout"].all() and not info["success"].any()
        assert info["steps"].tolist() == [5, 5]
        obs2, reward2, _, info2 = short.step(np.ones((2, 4)))
        np.testing.assert_array_equal(obs2["state"], obs["state"])
        assert reward2.tolist() == [0.0, 0.0] and info2["steps"].tolist() == [5, 5]
        assert not np.array_equal(obs0["state"], obs["state"])  # gravity moved the gripper fingers
    with mw.MetaWorldEnv("MT10", max_steps=80, terminate_on_success=False, progress=False) as cont:
        success, steps, _ = rollout(cont, [0, 1], "reach-v3")
        assert success.all() and steps.tolist() == [80, 80]


def test_bad_input_is_a_usage_error(env) -> None:
    with pytest.raises(UsageError, match="unknown Meta-World benchmark 'MT11'"):
        mw.MetaWorldEnv("MT11")
    with pytest.raises(UsageError, match="max_steps"):
        mw.MetaWorldEnv("MT10", max_steps=0)
    with pytest.raises(UsageError, match="camera"):
        mw.MetaWorldEnv("MT10", images=True, camera="front")
    with pytest.raises(UsageError, match="unknown MT10 task 'reach-v2'"):
        env.reset([0], "reach-v2")
    with pytest.raises(UsageError, match="unknown MT10 task 'reach-v3/train'"):
        env.reset([0], "reach-v3/train")
    with pytest.raises(UsageError, match=r"seeds run 0\.\.49; got seed 50"):
        env.reset([0, 50], "reach-v3")
    with pytest.raises(UsageError, match="2 tasks for 1 seeds"):
        env.reset([0], ["reach-v3", "push-v3"])
    with pytest.raises(UsageError, match="unknown split 'train' for metaworld"):
        online.select_tasks(env, online.OnlineConfig(splits=("train",)))
    with pytest.raises(UsageError, match="unknown task 'sweep-v3' for metaworld"):
        online.select_tasks(env, online.OnlineConfig(tasks=("sweep-v3",)))
    env.reset([0, 1], "reach-v3")
    with pytest.raises(UsageError, match=r"shape \(2, 4\)"):
        env.step(np.zeros((2, 7)))
    with pytest.raises(UsageError, match="NaN"):
        env.step(np.full((2, 4), np.nan))
    with mw.MetaWorldEnv("MT10", progress=False) as fresh, pytest.raises(UsageError, match="reset"):
        fresh.step(np.zeros((1, 4)))


def test_images_are_rendered_on_request(monkeypatch) -> None:
    with mw.MetaWorldEnv("MT10", images=True, image_size=32, progress=False) as env:
        try:
            obs = env.reset([0], "reach-v3/unseen")
        except UsageError as exc:
            pytest.skip(f"no OpenGL backend for MuJoCo here: {exc}")
        assert obs["image"].shape == (1, 32, 32, 3) and obs["image"].dtype == np.uint8
        assert obs["image"].std() > 5  # a scene, not a blank frame
        for _ in range(10):  # 10 cm to the side: the arm moves in the picture
            moved, *_ = env.step(np.array([[1.0, 0.0, 0.0, 0.0]]))
        assert moved["image"].shape == (1, 32, 32, 3)
        assert np.abs(moved["image"].astype(int) - obs["image"]).sum() > 0
    with mw.MetaWorldEnv(
        "MT10", images=True, image_size=32, flip_image=False, progress=False
    ) as raw:
        np.testing.assert_array_equal(
            raw.reset([0], "reach-v3/unseen")["image"][0], obs["image"][0, ::-1]
        )
    # A backend MuJoCo cannot render with is refused up front, in one line.
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    with pytest.raises(UsageError, match="MUJOCO_GL='no-such-backend' is not an OpenGL backend"):
        mw.MetaWorldEnv("MT10", images=True)
