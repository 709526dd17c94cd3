"""Tests for the tabletop world's scripted expert and its policy wrapper."""

from __future__ import annotations

import numpy as np
import pytest

from vla_eval.envs import tabletop as tt
from vla_eval.errors import UsageError

FAMILIES = ("pick", "place", "stack", "pour")


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


def test_bad_demo_quality_is_a_usage_error():
    with pytest.raises(UsageError, match="probability"):
        tt.DemoQuality(idle=1.5)
    with pytest.raises(UsageError, match="noise"):
        tt.DemoQuality(noise=-0.1)


def test_expert_policy_answers_for_the_rows_asked():
    env = tt.TabletopEnv()
    env.reset([3, 4, 5], ["pick/seen", "place/seen", "pour/unseen"])
    policy = tt.ExpertPolicy(env)
    policy.reset(3)
    expert = tt.ScriptedExpert()
    expert.reset(env, [3, 4, 5])
    full = expert.act(env)
    rows = np.array([2, 0])
    np.testing.assert_array_equal(policy({"env_index": rows}), full[rows])
