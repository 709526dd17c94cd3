"""Tests for Meta-World's tasks and goals: the benchmarks' task lists, seen and unseen goals.

Expected values come from Meta-World itself (its benchmark constructors, called here)
and from the published task lists.

They need the optional simulator extra (``pip install 'vla-eval[sim]'``); without it
they are reported as skipped with that reason.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest

metaworld = pytest.importorskip(
    "metaworld", reason="Meta-World is not installed (pip install 'vla-eval[sim]')"
)

from vla_eval.envs import Env  # noqa: E402
from vla_eval.envs import metaworld as mw  # noqa: E402
from vla_eval.envs.metaworld.goals import benchmark_goals  # noqa: E402

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
    benchmark_goals.cache_clear()
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


@pytest.mark.slow
def test_ml10_splits_are_train_and_test_classes_with_hidden_goals(monkeypatch, rollout) -> None:
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
