"""Offline scoring of a LeRobot policy on a LeRobotDataset, against a direct computation.

The dataset is made with LeRobot's own creation API (``LeRobotDataset.create``,
``add_frame``, ``save_episode``) from gym-pusht rollouts the toolkit recorded. The
expected numbers come from LeRobot's own ``select_action`` on the recorded observations
and a hand-written binning, L1, MSE and ACT loss in numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.lerobot.conftest import PUSHT, build_policy, pusht_stats, reference_policy
from vla_eval.cli import main
from vla_eval.errors import UsageError

SPEC = "vla_eval.policies.lerobot:make_policy"
TASKS = ("push the T", "push the T onto the target")
CHUNK = 8
BINS = 256


def _record_rollouts(policy_dir: Path, out: Path) -> list[dict]:
    code = main(["online", "--policy", SPEC, "--policy-arg", f"path={policy_dir}",
                 "--env", f"gym:{PUSHT}", "--env-arg", "obs_type=pixels_agent_pos",
                 "--trials", "2", "--splits", "seen", "--max-steps", "9",
                 "--record-actions", "--no-progress", "--out", str(out)])  # fmt: skip
    assert code == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def _replay(records: list[dict]) -> list[dict]:
    """Each recorded episode replayed in gym-pusht: its observations and actions."""
    import gym_pusht  # noqa: F401
    import gymnasium as gym

    episodes = []
    env = gym.make(PUSHT, obs_type="pixels_agent_pos")
    for r in sorted(records, key=lambda r: r["seed"]):
        obs, _ = env.reset(seed=r["seed"])
        frames = {"pixels": [], "agent_pos": [], "action": []}
        for a in np.asarray(r["actions"], dtype=np.float32):
            frames["pixels"].append(obs["pixels"])
            frames["agent_pos"].append(obs["agent_pos"].astype(np.float32))
            frames["action"].append(a)
            obs, *_ = env.step(a)
        episodes.append({k: np.stack(v) for k, v in frames.items()})
    env.close()
    return episodes


def _make_dataset(root: Path, episodes: list[dict]) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.image": {"dtype": "image", "shape": (96, 96, 3),
                              "names": ["height", "width", "channel"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
    }  # fmt: skip
    ds = LeRobotDataset.create(
        "local/pusht", fps=10, features=features, root=root, use_videos=False
    )
    for ep, task in zip(episodes, TASKS, strict=True):
        for t in range(len(ep["action"])):
            ds.add_frame(
                {
                    "observation.image": ep["pixels"][t],
                    "observation.state": ep["agent_pos"][t],
                    "action": ep["action"][t],
                    "task": task,
                }
            )
        ds.save_episode()
    ds.finalize()


@pytest.fixture(scope="module")
def scored(saved, tmp_path_factory):
    """(dataset dir, policy dir, the recorded episodes)."""
    base = tmp_path_factory.mktemp("dataset")
    episodes = _replay(_record_rollouts(saved["act"], base / "rollouts.jsonl"))
    root = base / "pusht"
    _make_dataset(root, episodes)
    actions = np.concatenate([e["action"] for e in episodes]).astype(np.float64)
    # deterministic ACT (no VAE, no dropout) whose queue holds the whole chunk
    policy = build_policy(
        "act", base / "act", pusht_stats(actions), chunk_size=CHUNK, n_action_steps=CHUNK,
        use_vae=False, dropout=0.0,
    )  # fmt: skip
    return root, policy, episodes


def _expected(policy_dir: Path, episodes: list[dict]) -> dict:
    """Every number the report gives, computed directly."""
    import torch
    from lerobot.envs.utils import preprocess_observation

    ref, pre, post = reference_policy(policy_dir)
    actions = np.concatenate([e["action"] for e in episodes]).astype(np.float64)
    low, high = actions.min(0), actions.max(0)
    scale = lambda a: 2 * (a - low) / (high - low) - 1  # noqa: E731
    mean = actions.mean(0).astype(np.float32).astype(np.float64)
    std = actions.std(0).astype(np.float32).astype(np.float64)
    rows = {"pred": [], "target": [], "valid": [], "task": [], "l1_norm": []}
    for ep, task in zip(episodes, TASKS, strict=True):
        n = len(ep["action"])
        for t in range(n):
            ref.reset()
            obs = preprocess_observation(
                {"pixels": ep["pixels"][t : t + 1], "agent_pos": ep["agent_pos"][t : t + 1]}
            )
            with torch.inference_mode():
                batch = pre(obs)
                chunk = torch.stack([ref.select_action(batch)[0] for _ in range(CHUNK)])
                raw = post(chunk).numpy().astype(np.float64)
            idx = np.minimum(np.arange(t, t + CHUNK), n - 1)
            valid = np.arange(t, t + CHUNK) < n
            target = ep["action"][idx].astype(np.float64)
            target_norm = (target - mean) / (std + 1e-8)
            err = np.abs(target_norm - chunk.numpy().astype(np.float64)) * valid[:, None]
            rows["pred"].append(raw)
            rows["target"].append(target)
            rows["valid"].append(valid)
            rows["task"].append(task)
            rows["l1_norm"].append(err)
    pred, target = scale(np.array(rows["pred"])), scale(np.array(rows["target"]))
    valid = np.array(rows["valid"])
    bins = lambda x: np.clip(np.floor((np.clip(x, -1, 1) + 1) / 2 * BINS), 0, BINS - 1)  # noqa: E731
    w = valid[:, :, None]
    return {
        "count": int(w.sum() * 2),
        "l1": float((np.abs(pred - target) * w).sum() / (w.sum() * 2)),
        "mse": float(((pred - target) ** 2 * w).sum() / (w.sum() * 2)),
        "accuracy_per_dim": ((bins(pred) == bins(target)) * w).sum((0, 1)) / w.sum(),
        "l1_per_step": (np.abs(pred - target) * w).sum((0, 2)) / (w.sum((0, 2)) * 2),
        "tasks": np.array(rows["task"]),
        "task_l1": {
            task: float(
                (np.abs(pred - target) * w)[np.array(rows["task"]) == task].sum()
                / (w[np.array(rows["task"]) == task].sum() * 2)
            )
            for task in TASKS
        },
        "loss": float(np.array(rows["l1_norm"]).mean()),
        "l1_units": (np.abs(np.array(rows["pred"]) - np.array(rows["target"])) * w).sum((0, 1))
        / w.sum(),
        "first_pred": pred[:, 0],
        "first_true": target[:, 0],
    }


@pytest.mark.slow
def test_scores_equal_a_direct_computation(scored):
    from vla_eval.offline.lerobot_dataset import score_dataset
    from vla_eval.policies.lerobot import make_policy

    root, policy_dir, episodes = scored
    result = score_dataset(root, make_policy(None, path=policy_dir), batch_size=5)
    want = _expected(policy_dir, episodes)
    m = result["results"][0]["metrics"]
    assert result["schema"] == "vla-eval/offline/1" and result["kind"] == "lerobot-dataset"
    assert m["chunk"] == CHUNK and m["overall"]["count"] == want["count"]
    assert m["overall"]["l1"] == pytest.approx(want["l1"], rel=1e-5)
    assert m["overall"]["mse"] == pytest.approx(want["mse"], rel=1e-5)
    acc = [m["per_dim"][d]["accuracy"] for d in ("x", "y")]
    np.testing.assert_allclose(acc, want["accuracy_per_dim"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        [s["l1"] for s in m["per_chunk_step"]], want["l1_per_step"], rtol=1e-5
    )
    assert sorted(m["per_task"]) == sorted(TASKS)
    for task in TASKS:
        assert m["per_task"][task]["l1"] == pytest.approx(want["task_l1"][task], rel=1e-5)
    loss = result["results"][0]["policy_loss"]
    assert loss["mean"] == pytest.approx(want["loss"], rel=1e-5)
    units = result["results"][0]["action_units"]["per_dim"]
    np.testing.assert_allclose([units["x"]["l1"], units["y"]["l1"]], want["l1_units"], rtol=1e-5)
    # open-loop traces (normalised): each frame's first predicted action against the recorded one
    traces = result["results"][0]["traces"]
    assert [t["task"] for t in traces] == list(TASKS)
    np.testing.assert_allclose(
        np.concatenate([t["pred"] for t in traces]), want["first_pred"], rtol=0, atol=1e-5
    )
    np.testing.assert_allclose(
        np.concatenate([t["true"] for t in traces]), want["first_true"], rtol=0, atol=1e-12
    )
    assert result["data"]["episodes"] == {"all": 2}
    assert result["data"]["samples"] == {"all": sum(len(e["action"]) for e in episodes)}


@pytest.mark.slow
def test_a_diffusion_policy_scores_with_its_observation_history(scored, saved):
    """History policies are scored too, reproducibly (seeded noise), on chunks of
    n_action_steps starting at the frame."""
    from vla_eval.offline.lerobot_dataset import score_dataset
    from vla_eval.policies.lerobot import make_policy

    root = scored[0]
    policy = make_policy(None, path=saved["diffusion"])
    a = score_dataset(root, policy, batch_size=4, seed=3)
    b = score_dataset(root, policy, batch_size=4, seed=3)
    m = a["results"][0]["metrics"]
    assert m["chunk"] == 4 and m["overall"]["count"] > 0
    assert a["results"][0]["metrics"] == b["results"][0]["metrics"]
    assert a["results"][0]["policy_loss"]["mean"] > 0


def test_not_a_dataset_and_no_action_feature_are_usage_errors(scored, saved, tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from vla_eval.offline.lerobot_dataset import dataset_features, score_dataset
    from vla_eval.policies.lerobot import make_policy

    with pytest.raises(UsageError, match="not a LeRobotDataset"):
        dataset_features(tmp_path)
    root = tmp_path / "no-action"
    features = {"observation.state": {"dtype": "float32", "shape": (2,), "names": None}}
    ds = LeRobotDataset.create("local/x", fps=10, features=features, root=root, use_videos=False)
    ds.add_frame({"observation.state": np.zeros(2, np.float32), "task": "t"})
    ds.save_episode()
    ds.finalize()
    with pytest.raises(UsageError, match="no 'action' feature"):
        score_dataset(root, make_policy(None, path=saved["act"]))


def test_cli_scores_a_dataset_and_refuses_bad_ones(scored, tmp_path, capsys):
    root, policy_dir, _ = scored
    out = tmp_path / "report"
    code = main(["offline", "--dataset", str(root), "--policy", SPEC,
                 "--policy-arg", f"path={policy_dir}", "--json", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "lerobot-dataset"
    assert (
        json.loads((out / "offline.json").read_text())["results"][0]["metrics"]
        == (printed["results"][0]["metrics"])
    )
    assert (out / "dimension_accuracy.png").is_file() and (out / "open_loop.png").is_file()
    code = main(["offline", "--dataset", str(tmp_path), "--policy", SPEC,
                 "--policy-arg", f"path={policy_dir}"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a LeRobotDataset" in err[0]
