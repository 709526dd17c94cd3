"""Tests for the Meta-World adapter: tasks, splits, determinism, the scripted experts, online runs.

They need the optional simulator extra (``pip install 'vla-eval[sim]'``); without it
they are reported as skipped with that reason. Expected values come from Meta-World
itself (its benchmark constructors, called here) and from the published task lists.
"""

from __future__ import annotations

import json
from importlib.metadata import version

import numpy as np
import pytest

metaworld = pytest.importorskip(
    "metaworld", reason="Meta-World is not installed (pip install 'vla-eval[sim]')"
)

from vla_eval import online  # noqa: E402
from vla_eval.envs import Env  # noqa: E402
from vla_eval.envs import metaworld as mw  # noqa: E402
from vla_eval.errors import UsageError  # noqa: E402

pytestmark = pytest.mark.sim

# The benchmarks' task lists as published (Yu et al., CoRL 2019, Fig. 1 and Sec. 5).
MT10 = [
    "reach",
    "push",
    "pick-place",
    "door-open",
    "drawer-open",
    "drawer-close",
    "button-press-topdown",
    "peg-insert-side",
    "window-open",
    "window-close",
]
ML10_TRAIN = [
    "reach",
    "push",
    "pick-place",
    "door-open",
    "drawer-close",
    "button-press-topdown",
    "peg-insert-side",
    "window-open",
    "sweep",
    "basketball",
]
ML10_TEST = ["drawer-open", "door-close", "shelf-place", "sweep-into", "lever-pull"]


def v3(names: list[str]) -> list[str]:
    return [f"{n}-v3" for n in names]


@pytest.fixture(scope="module")
def env():
    with mw.MetaWorldEnv("MT10", progress=False) as e:
        yield e


def rollout(env: mw.MetaWorldEnv, seeds, tasks, policy=None):
    """Run one batch to the end with the expert; returns (success, steps, states)."""
    policy = policy or mw.MetaWorldExpertPolicy(env)
    obs = env.reset(seeds, tasks)
    states = [obs["state"]]
    done = np.zeros(len(seeds), bool)
    while not done.all():
        obs, _, done, info = env.step(policy({"state": obs["state"]}))
        states.append(obs["state"])
    return info["success"], info["steps"], np.stack(states, 1)


def test_tasks_metadata_and_protocol(env) -> None:
    assert isinstance(env, Env)
    assert env.name == "metaworld" and env.action_dim == 4
    assert env.packages == ("metaworld", "mujoco", "gymnasium", "numpy")
    assert env.version.startswith(version("metaworld") + "+MT10")
    assert [t.name for t in env.tasks if t.split == "seen"] == v3(MT10)
    assert [t.name for t in env.tasks if t.split == "unseen"] == v3(MT10)
    assert all(t.spec.max_steps == 500 for t in env.tasks)
    # Every Meta-World v3 task class has an instruction.
    families = {n.rsplit("-v", 1)[0] for n in metaworld.env_dict.ALL_V3_ENVIRONMENTS}
    assert families == set(mw.INSTRUCTIONS)
    obs = env.reset([0, 1], ["reach-v3/unseen", "door-open-v3/unseen"])
    assert obs["state"].shape == (2, 39) and obs["state"].dtype == np.float32
    assert obs["instruction"] == ["reach the goal", "open the door"]
    assert "image" not in obs


def spy_on(monkeypatch, benchmark: str) -> list:
    """Record every benchmark Meta-World builds (the env's goals must come from one)."""
    real = getattr(metaworld, benchmark)
    built = []

    def spy(*args, **kwargs):
        built.append((args, kwargs, real(*args, **kwargs)))
        return built[-1][2]

    monkeypatch.setattr(metaworld, benchmark, spy)
    mw._benchmark_goals.cache_clear()
    return built


def test_seen_goals_are_the_benchmarks_training_goals(env, monkeypatch) -> None:
    built = spy_on(monkeypatch, "MT10")
    got = {name: mw.goal_vectors(env.goals(f"{name}/seen")) for name in v3(MT10)}
    assert len(built) == 1 and built[0][:2] == ((), {"seed": 0})
    bench = built[0][2]
    for name in v3(MT10):
        expected = mw.goal_vectors([t for t in bench.train_tasks if t.env_name == name])
        assert expected.shape[0] == 50
        np.testing.assert_array_equal(got[name], expected)


def test_unseen_goals_are_heldout_and_disjoint_from_seen(env) -> None:
    for name in ("reach-v3", "push-v3", "pick-place-v3"):
        seen = mw.goal_vectors(env.goals(f"{name}/seen"))
        unseen = mw.goal_vectors(env.goals(f"{name}/unseen"))
        assert seen.shape == unseen.shape == (50, seen.shape[1])
        assert len(np.unique(unseen, axis=0)) == 50
        # No unseen goal variant is within 1 mm (in every coordinate) of a seen one.
        gap = np.abs(unseen[:, None, :] - seen[None, :, :]).max(-1)
        assert gap.min() > 1e-3
        # Same sampling ranges as the seen goals (the env's random reset space).
        space = metaworld.env_dict.ALL_V3_ENVIRONMENTS[name]()._random_reset_space
        assert np.all(unseen >= space.low - 1e-12) and np.all(unseen <= space.high + 1e-12)
    # The documented definition, rebuilt here from Meta-World's public API.
    expected = mw.goal_vectors(metaworld.MT1("push-v3", seed=2**20).train_tasks)
    np.testing.assert_array_equal(mw.goal_vectors(env.goals("push-v3/unseen")), expected)


def test_same_task_and_seed_give_the_same_episode_in_any_batch(env) -> None:
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


def test_scripted_experts_succeed_on_seen_and_unseen_goals(env) -> None:
    names = ["reach-v3", "push-v3", "pick-place-v3", "drawer-close-v3"]
    tasks = [f"{n}/{split}" for split in ("seen", "unseen") for n in names for _ in range(3)]
    seeds = [10, 20, 30] * (len(tasks) // 3)
    success, steps, _ = rollout(env, seeds, tasks)
    assert success.mean() >= 0.9, dict(zip(tasks, success.tolist(), strict=True))
    assert np.all(steps[success] < 500)  # they end at the first success


def test_online_run_writes_episodes_with_simulator_provenance(env, tmp_path) -> None:
    cfg = online.OnlineConfig(
        trials=3, tasks=("reach-v3", "window-close-v3"), batch_size=6, policy_name="expert"
    )
    path = online.run(env, mw.MetaWorldExpertPolicy(env), cfg, tmp_path / "a.jsonl", progress=False)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(recs) == 2 * 2 * 3
    assert {(r["task"], r["split"], r["seed"]) for r in recs} == {
        (t, s, k)
        for t in ("reach-v3", "window-close-v3")
        for s in ("seen", "unseen")
        for k in range(3)
    }
    assert np.mean([r["success"] for r in recs]) >= 0.9
    r = recs[0]
    assert r["env"]["name"] == "metaworld" and r["env"]["version"] == env.version
    packages = r["env"]["packages"]
    for name in ("metaworld", "mujoco", "gymnasium", "numpy"):
        assert packages[name] == version(name)
    assert r["instruction"] in ("reach the goal", "close the window")
    # Determinism through the harness: a second run writes the same episodes.
    again = online.run(
        env, mw.MetaWorldExpertPolicy(env), cfg, tmp_path / "b.jsonl", progress=False
    )
    key = lambda p: sorted(  # noqa: E731
        (r["task"], r["split"], r["seed"], r["success"], r["steps"], r["return"])
        for r in map(json.loads, p.read_text().splitlines())
    )
    assert key(path) == key(again)


def test_step_limit_timeout_and_finished_envs_stay_put(env) -> None:
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


@pytest.mark.slow
def test_ml10_splits_are_train_and_test_classes_with_hidden_goals(monkeypatch) -> None:
    built = spy_on(monkeypatch, "ML10")
    with mw.MetaWorldEnv("ML10", progress=False) as env:
        assert [t.name for t in env.tasks if t.split == "seen"] == v3(ML10_TRAIN)
        assert [t.name for t in env.tasks if t.split == "unseen"] == v3(ML10_TEST)
        tasks = ["drawer-open-v3/unseen", "door-close-v3/unseen", "reach-v3/seen"]
        obs = env.reset([0, 1, 2], tasks)
        assert len(built) == 1 and built[0][:2] == ((), {"seed": 0})
        bench = built[0][2]
        for name, split, source in (
            ("door-close-v3", "unseen", bench.test_tasks),
            ("reach-v3", "seen", bench.train_tasks),
        ):
            expected = mw.goal_vectors([t for t in source if t.env_name == name])
            np.testing.assert_array_equal(mw.goal_vectors(env.goals(f"{name}/{split}")), expected)
        assert np.all(obs["state"][:, 36:39] == 0)  # ML hides the goal
        assert np.all(np.abs(env.privileged_state()[:, 36:39]).sum(1) > 0)
        success, _, _ = rollout(env, [0, 1, 2], tasks)
        assert success.all()


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
