"""The ``lerobot`` policy plug-in against LeRobot's own inference, on gym-pusht.

The reference is LeRobot's own loop, as its eval script runs it: a policy loaded with its
own classes, ``preprocess_observation`` on gym-pusht's observations, the saved
pre-processor, ``select_action`` and the post-processor, one policy instance per episode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.lerobot.conftest import PUSHT, build_policy, reference_policy
from vla_eval.cli import main
from vla_eval.errors import UsageError

SPEC = "vla_eval.policies.lerobot:make_policy"
STEPS = 10  # ACT refills its 4-action queue at steps 0, 4 and 8; diffusion likewise


def _online(tmp_path: Path, policy_dir: Path, *extra: str) -> Path:
    out = tmp_path / "episodes.jsonl"
    code = main(
        [
            "online", "--policy", SPEC, "--policy-arg", f"path={policy_dir}",
            "--env", f"gym:{PUSHT}", "--env-arg", "obs_type=pixels_agent_pos",
            "--trials", "2", "--splits", "seen", "--max-steps", str(STEPS),
            "--record-actions", "--no-progress", "--out", str(out), *extra,
        ]
    )  # fmt: skip
    assert code == 0
    return out


def _reference_actions(policy_dir: Path, seed: int, steps: int) -> np.ndarray:
    """What LeRobot's own loop executes in gym-pusht episode ``seed`` for ``steps`` steps."""
    import gym_pusht  # noqa: F401  (registers the id)
    import gymnasium as gym
    import torch
    from lerobot.envs.utils import preprocess_observation

    from vla_eval.policies.lerobot import episode_seed

    policy, pre, post = reference_policy(policy_dir)
    policy.reset()
    env = gym.make(PUSHT, obs_type="pixels_agent_pos")
    obs, _ = env.reset(seed=seed)
    # the plug-in's documented noise seed for this episode (plug-in seed 0)
    first = {
        "agent_pos": obs["agent_pos"][None],
        "image": obs["pixels"][None],
        "pixels": obs["pixels"][None],
        "state": obs["agent_pos"][None].astype(np.float32),
    }
    torch.manual_seed(episode_seed(0, first, 0))
    actions = []
    for _ in range(steps):
        batch = preprocess_observation({k: v[None] for k, v in obs.items()})
        with torch.inference_mode():
            action = post(policy.select_action(pre(batch))).numpy()[0]
        actions.append(action)
        obs, *_ = env.step(action)
    env.close()
    return np.array(actions, dtype=np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_executed_actions_equal_lerobots_own_select_action(kind, saved, tmp_path):
    out = _online(tmp_path, saved[kind])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["seed"] for r in records) == [0, 1]
    for r in records:
        assert r["policy"] == kind and r["steps"] == STEPS
        executed = np.array(r["actions"])
        expected = _reference_actions(saved[kind], r["seed"], STEPS)
        # records keep 6 decimals; pusht actions are in [0, 512]
        np.testing.assert_allclose(executed, expected, rtol=0, atol=2e-5)
    # the two episodes differ: each environment had its own observations and queue
    assert not np.allclose(records[0]["actions"], records[1]["actions"])


def _fake_obs(rng: np.random.Generator, rows: list[int]) -> dict:
    n = len(rows)
    return {
        "pixels": rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8),
        "agent_pos": rng.uniform(0, 512, (n, 2)),
        "env_index": np.array(rows),
    }


@pytest.fixture(scope="module")
def ensembling(tmp_path_factory) -> Path:
    """ACT with temporal ensembling: its state is an object of LeRobot's, not a queue."""
    path = tmp_path_factory.mktemp("ensembling") / "act"
    return build_policy("act", path, temporal_ensemble_coeff=0.01, n_action_steps=1)


@pytest.mark.parametrize("kind", ["act", "diffusion", "act-ensembling"])
def test_each_environment_keeps_its_own_queue_and_history(kind, saved, ensembling):
    """Environments asked at different times and reset at different times act exactly as
    separate LeRobot policies would, each fed only its own observations."""
    import torch
    from lerobot.envs.utils import preprocess_observation

    from vla_eval.policies.lerobot import episode_seed, make_policy

    saved = {**saved, "act-ensembling": ensembling}
    policy = make_policy(None, path=saved[kind])
    refs: dict[int, tuple] = {}
    rng = np.random.default_rng(1)
    # (rows asked, rows reset before) per call: env 1 skips a step, env 0 restarts mid-way
    schedule = [([0, 1, 2], [0, 1, 2]), ([0, 2], []), ([0, 1, 2], []), ([1, 2], []),
                ([0, 1], [0]), ([0, 1, 2], []), ([0, 2], []), ([0, 1, 2], [])]  # fmt: skip
    for rows, resets in schedule:
        if resets:
            policy.reset(np.array(resets))
        obs = _fake_obs(rng, rows)
        got = policy(obs)
        for r, i in enumerate(rows):
            if i in resets:
                refs[i] = reference_policy(saved[kind])
                refs[i][0].reset()
                row = {k: v[r : r + 1] for k, v in obs.items() if k != "env_index"}
                refs[i] = (*refs[i], torch.Generator().manual_seed(episode_seed(0, row, 0)))
            ref, pre, post, gen = refs[i]
            batch = preprocess_observation(
                {"pixels": obs["pixels"][r : r + 1], "agent_pos": obs["agent_pos"][r : r + 1]}
            )
            with torch.random.fork_rng(devices=[]), torch.inference_mode():
                torch.set_rng_state(gen.get_state())
                want = post(ref.select_action(pre(batch))).numpy()[0]
                gen.set_state(torch.get_rng_state())
            np.testing.assert_allclose(got[r], want, rtol=1e-6, atol=1e-4)
    # ACT's lined-up queues shared calls; diffusion draws noise and ACT's temporal
    # ensembler is no queue, so those went row by row
    assert policy.batching is (kind == "act")


def test_a_directory_that_is_not_a_saved_policy_is_one_line(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    code = main(["online", "--policy", SPEC, "--policy-arg", f"path={tmp_path}",
                 "--env", f"gym:{PUSHT}", "--trials", "1", "--no-progress",
                 "--out", str(tmp_path / "e.jsonl")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        len(err) == 1
        and "is not a saved LeRobot policy" in err[0]
        and "model.safetensors" in err[0]
    )
    assert "Traceback" not in "\n".join(err)


def test_a_missing_input_feature_is_named(saved, tmp_path, capsys):
    # gym-pusht's default observation is its 5-D state: no image for the policy's camera
    code = main(["online", "--policy", SPEC, "--policy-arg", f"path={saved['act']}",
                 "--env", f"gym:{PUSHT}", "--trials", "1", "--max-steps", "3", "--no-progress",
                 "--out", str(tmp_path / "e.jsonl")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert "'observation.image'" in err[0] and "pixels" in err[0]


def test_bad_arguments_are_usage_errors(saved, tmp_path):
    from vla_eval.policies.lerobot import make_policy

    with pytest.raises(UsageError, match="path=DIR"):
        make_policy(None)
    with pytest.raises(UsageError, match="no such directory"):
        make_policy(None, path=tmp_path / "nowhere")
    with pytest.raises(UsageError, match="unknown device"):
        make_policy(None, path=saved["act"], device="toaster")
    with pytest.raises(UsageError, match="seed must be a whole number"):
        make_policy(None, path=saved["act"], seed="x")


def test_fingerprint_follows_the_weights(saved, tmp_path):
    import shutil

    from vla_eval.policies.lerobot import make_policy

    copy = tmp_path / "copy"
    shutil.copytree(saved["act"], copy)
    a, b = make_policy(None, path=saved["act"]), make_policy(None, path=copy)
    assert a.fingerprint() == b.fingerprint()
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert a.fingerprint() != b.fingerprint()


def test_names_come_from_the_directory(saved, tmp_path):
    import shutil

    from vla_eval.policies.lerobot import make_policy

    ckpt = tmp_path / "act_pusht" / "checkpoints" / "020000" / "pretrained_model"
    shutil.copytree(saved["act"], ckpt)
    assert make_policy(None, path=ckpt).name == "act_pusht-020000"
    assert make_policy(None, path=saved["act"]).name == "act"
    assert make_policy(None, path=saved["act"], name="mine").name == "mine"


def test_registered_as_lerobot():
    from vla_eval.policies.lerobot import make_policy
    from vla_eval.policies.registry import resolve

    assert resolve("lerobot").make is make_policy
