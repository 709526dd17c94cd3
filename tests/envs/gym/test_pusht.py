"""gym-pusht end to end through `make_env("gym:...")` and `vla_eval.online.run`.

A scripted controller written here pushes the T toward its goal. Every episode the
toolkit records is checked against the same policy run in a plain Gymnasium loop
(``gymnasium.make`` + ``reset(seed=...)`` + ``step``), which is the independent
expected value; the controller is compared with a uniformly random policy on the same
seeds. Needs the ``gym`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium", reason="needs the gym extra: pip install 'vla-eval[gym]'")
pytest.importorskip("gym_pusht", reason="needs the gym extra: pip install 'vla-eval[gym]'")

from vla_eval import online  # noqa: E402
from vla_eval.envs import Env, make_env  # noqa: E402
from vla_eval.errors import UsageError  # noqa: E402

ENV = "gym:gym_pusht/PushT-v0"
GOAL, GOAL_ANGLE = np.array([256.0, 256.0]), np.pi / 4
COG = 45.0  # the T's centre of mass: 45 px along its stem from the body's origin


def _centre(position: np.ndarray, angle: float) -> np.ndarray:
    return position + COG * np.array([-np.sin(angle), np.cos(angle)])


def push_t(state: np.ndarray) -> np.ndarray:
    """One action (a target for the agent) from [agent_x, agent_y, block_x, block_y, angle].

    Go behind the T's centre of mass as seen from the goal's, then push through it;
    pushing off-centre by an amount proportional to the angle error turns the T
    toward the goal's angle. On the way behind, detour sideways around the T.
    """
    agent, centre, angle = state[:2], _centre(state[2:4], state[4]), state[4]
    error = _centre(GOAL, GOAL_ANGLE) - centre
    distance = float(np.linalg.norm(error))
    turn = (GOAL_ANGLE - angle + np.pi) % (2 * np.pi) - np.pi
    ahead = error / distance if distance > 1e-6 else np.array([1.0, 0.0])
    left = np.array([-ahead[1], ahead[0]])
    along, across = (agent - centre) @ ahead, (agent - centre) @ left
    offset = np.clip(-15.0 * turn, -35.0, 35.0)
    side = 1.0 if across >= 0 else -1.0
    if along < -70 and abs(across - offset) < 25:  # behind it and lined up: push
        target = centre + left * offset + ahead * min(distance, 40.0)
    elif along < -70:  # behind it: line up
        target = centre - ahead * 95 + left * offset
    elif abs(across) < 95:  # in front or beside: step sideways, clear of the T
        target = centre + left * side * 110 + ahead * along
    else:  # clear of it: go behind
        target = centre - ahead * 95 + left * side * 110
    return np.clip(target, 0.0, 512.0)


class PushTController:
    """The scripted policy: `push_t` per environment, from the raw state observation."""

    def __init__(self) -> None:
        self.resets: list[object] = []

    def reset(self, envs: object) -> None:  # a count (older runners) or environment indices
        self.resets.append(envs)

    def __call__(self, obs: dict) -> np.ndarray:
        return np.stack([push_t(s) for s in obs["observation"]])


class RandomPolicy:
    """Uniform targets over the table from its own generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: dict) -> np.ndarray:
        return self.rng.uniform(0.0, 512.0, (len(obs["observation"]), 2))


def plain_gymnasium(seed: int, max_steps: int, policy=push_t) -> dict:
    """The episode as a plain Gymnasium loop sees it (float32 actions, as the env's space)."""
    env = gym.make("gym_pusht/PushT-v0")
    state, _ = env.reset(seed=seed)
    total, steps, success = 0.0, 0, False
    while steps < max_steps:
        state, reward, terminated, truncated, info = env.step(policy(state).astype(np.float32))
        total, steps = total + reward, steps + 1
        success = bool(info["is_success"])
        if success or terminated or truncated:
            break
    env.close()
    return {"success": success, "steps": steps, "return": total}


def _records(path: Path) -> dict[int, dict]:
    return {r["seed"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_scripted_episodes_match_plain_gymnasium_and_some_succeed(tmp_path: Path) -> None:
    env = make_env(ENV)
    assert isinstance(env, Env) and env.action_dim == 2
    policy = PushTController()
    config = online.OnlineConfig(trials=12, splits=("seen",), max_steps=300, batch_size=6)
    with env:
        path = online.run(env, policy, config, tmp_path / "pusht.jsonl", progress=False)
        assert len(env._pool) == 1  # both batches ran in the same vector env
    records = _records(path)
    assert sorted(records) == list(range(12)) and len(policy.resets) == 2
    for seed, record in records.items():
        expected = plain_gymnasium(seed, 300)
        assert record["success"] == expected["success"], seed
        assert record["steps"] == expected["steps"], seed
        assert record["return"] == pytest.approx(expected["return"], rel=1e-9), seed
        assert record["task"] == "PushT-v0" and record["split"] == "seen"
        assert record["env"]["name"] == ENV and record["env"]["version"] == env.version
    successes = [s for s, r in records.items() if r["success"]]
    assert successes, "the controller solves seed 3 of these (at step 280)"
    assert all(records[s]["steps"] < 300 for s in successes)  # they end at success


def test_scripted_policy_beats_random(tmp_path: Path) -> None:
    config = online.OnlineConfig(trials=8, splits=("seen",), max_steps=150, batch_size=8)
    returns = {}
    with make_env(ENV) as env:
        for name, policy in [("scripted", PushTController()), ("random", RandomPolicy(0))]:
            path = online.run(env, policy, config, tmp_path / f"{name}.jsonl", progress=False)
            returns[name] = np.mean([r["return"] for r in _records(path).values()])
    # coverage reward per step: about 0.1 for the controller, near 0 for random targets
    assert returns["scripted"] > 5 * returns["random"] and returns["scripted"] > 10, returns


def _outcomes(path: Path) -> dict[tuple[str, int], tuple]:
    return {
        (r["split"], r["seed"]): (r["success"], r["steps"], round(r["return"], 9))
        for r in map(json.loads, path.read_text().splitlines())
    }


def test_same_seeds_same_episodes_with_one_or_two_workers(tmp_path: Path) -> None:
    """Subprocess workers, batch composition and splits leave every episode unchanged."""
    env_file = tmp_path / "pusht.toml"
    env_file.write_text(
        '[env]\nid = "gym_pusht/PushT-v0"\nmax_steps = 40\n'
        "[splits.seen]\n[splits.unseen]\nenv_args = { damping = 0.5 }\nseeds_from = 1000\n",
        encoding="utf-8",
    )
    runs = {}
    # batches of 4 hold 3 seen + 1 unseen episodes, then 2 unseen: with 2 workers, one
    # vector env has more episodes than workers, and two step at once across splits
    for workers, batch in [(1, 3), (2, 4)]:
        config = online.OnlineConfig(trials=3, batch_size=batch)
        with make_env(str(env_file), workers=workers) as env:
            assert env.preferred_batch_size == workers
            out = tmp_path / f"w{workers}.jsonl"
            runs[workers] = _outcomes(
                online.run(env, PushTController(), config, out, progress=False)
            )
    assert runs[1] == runs[2] and len(runs[1]) == 6
    # the unseen split is the damped table from seed 1000 on: checked against plain Gymnasium
    damped = gym.make("gym_pusht/PushT-v0", damping=0.5)
    state, _ = damped.reset(seed=1002)
    total = 0.0
    for _ in range(40):
        state, reward, terminated, *_ = damped.step(push_t(state).astype(np.float32))
        total += reward
        if terminated:
            break
    assert runs[1][("unseen", 2)][2] == round(total, 9)


def test_render_gives_the_environments_frames() -> None:
    with make_env(ENV, render=True) as env:
        env.reset([1, 2], env.tasks[0])
        frames = env.render()
    direct = gym.make("gym_pusht/PushT-v0", render_mode="rgb_array")
    expected = []
    for seed in (1, 2):
        direct.reset(seed=seed)
        expected.append(direct.render())
    np.testing.assert_array_equal(frames, np.stack(expected))
    assert frames.dtype == np.uint8 and frames.shape == (2, 680, 680, 3)


def test_a_finished_episode_ignores_actions_and_stays_done() -> None:
    with make_env(ENV, max_steps=2) as env:
        env.reset([0, 1], env.tasks[0])
        env.step(np.full((2, 2), 256.0))
        obs, reward, done, _ = env.step(np.full((2, 2), 256.0))
        assert done.tolist() == [True, True]
        for _ in range(3):  # the vector env's own reset comes at the first of these
            again, reward, done, info = env.step(np.full((2, 2), 10.0))
            assert done.tolist() == [True, True] and reward.tolist() == [0.0, 0.0]
            assert not info["success"].any()
            np.testing.assert_array_equal(again["observation"], obs["observation"])  # no move


def test_bad_input_is_one_line_naming_the_thing() -> None:
    with pytest.raises(UsageError, match=r"unknown Gymnasium id 'gym_pusht/PushT-v9'.*PushT-v0"):
        make_env("gym:gym_pusht/PushT-v9")
    with pytest.raises(UsageError, match="cannot import module 'no_such_module'"):
        make_env("gym:no_such_module:Thing-v0")
    with pytest.raises(UsageError, match=r"cannot be made with .*obs_type"):
        make_env(ENV, obs_type="sonar")
    with make_env(ENV) as env:
        env.reset([0, 1], env.tasks[0])
        with pytest.raises(UsageError, match=r"shape \(N, action_dim\) = \(2, 2\), got \(2, 3\)"):
            env.step(np.zeros((2, 3)))
    with make_env(ENV, success_key="solved") as env:
        env.reset([0], env.tasks[0])
        with pytest.raises(UsageError) as caught:
            env.step(np.zeros((1, 2)))
    message = str(caught.value)
    assert "'solved' never appears" in message and "coverage" in message and "is_success" in message


def test_shards_and_a_resumed_run_hold_the_episodes_of_one_run(tmp_path: Path) -> None:
    config = online.OnlineConfig(trials=4, splits=("seen",), max_steps=30, batch_size=2)
    with make_env(ENV, workers=2) as env:
        full = online.run(env, PushTController(), config, tmp_path / "full.jsonl", progress=False)
        shards = {}
        for i in (0, 1):
            out = tmp_path / f"shard{i}.jsonl"
            shards[i] = online.run(
                env, PushTController(), config, out, shard=(i, 2), progress=False
            )
        cut = tmp_path / "cut.jsonl"  # a run stopped after three episodes
        cut.write_text("".join(full.read_text().splitlines(keepends=True)[:3]), encoding="utf-8")
        online.run(env, PushTController(), config, cut, resume=True, progress=False)
    expected = _outcomes(full)
    assert len(expected) == 4
    assert {**_outcomes(shards[0]), **_outcomes(shards[1])} == expected
    assert _outcomes(cut) == expected and len(cut.read_text().splitlines()) == 4
