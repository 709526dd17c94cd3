"""Online rollouts: determinism, shards, resume after a crash (SIGKILL), bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vla_eval import online
from vla_eval.envs.tabletop import ScriptedExpert, TabletopEnv
from vla_eval.errors import UsageError


class ExpertPolicy:
    """The scripted expert behind the Policy interface (reads the env's privileged state)."""

    def __init__(self, env: TabletopEnv, noise: float = 0.0) -> None:
        self.env, self.expert, self.noise = env, ScriptedExpert(), noise

    def reset(self, n: int) -> None:
        self.expert.reset(self.env, np.arange(n))
        self.rng = np.random.default_rng(0)

    def __call__(self, obs):
        a = self.expert.act(self.env)[obs["env_index"]]
        # Deterministic noise keyed on the observation so episodes depend only on seeds.
        jitter = (obs["state"][:, :2].sum(1, keepdims=True) * 1000 % 1 - 0.5) * self.noise
        a[:, :2] += jitter
        return a


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def keyed(path: Path) -> dict:
    out = {}
    for r in records(path):
        key = (r["task"], r["split"], r["seed"])
        assert key not in out, f"duplicate {key}"
        out[key] = (r["success"], r["steps"], r["return"], r.get("instruction"))
    return out


def run(path: Path, **kw) -> Path:
    env = TabletopEnv()
    cfg = online.OnlineConfig(
        trials=kw.pop("trials", 6),
        policy_name="expert",
        batch_size=kw.pop("batch_size", 8),
        **kw.pop("cfg", {}),
    )
    return online.run(env, ExpertPolicy(env, noise=0.2), cfg, path, progress=False, **kw)


def test_every_task_split_seed_once_and_expert_succeeds(tmp_path) -> None:
    path = run(tmp_path / "a.jsonl")
    recs = records(path)
    env = TabletopEnv()
    assert len(recs) == len(env.tasks) * 6
    assert {(r["task"], r["split"]) for r in recs} == {(t.name, t.split) for t in env.tasks}
    assert {r["seed"] for r in recs} == set(range(6))
    assert np.mean([r["success"] for r in recs]) >= 0.95
    r = recs[0]
    assert r["env"]["name"] == "tabletop" and r["env"]["version"] == env.version
    assert r["env"]["packages"]["numpy"] == np.__version__ and r["env"]["seed"] == r["seed"]


def test_same_seeds_same_episodes_whatever_the_batch_size(tmp_path) -> None:
    a = keyed(run(tmp_path / "a.jsonl", batch_size=8))
    b = keyed(run(tmp_path / "b.jsonl", batch_size=8))
    assert a == b


def test_shards_union_equals_full_run(tmp_path) -> None:
    full = keyed(run(tmp_path / "full.jsonl"))
    union: dict = {}
    for i in range(3):
        part = keyed(run(tmp_path / f"s{i}.jsonl", shard=(i, 3)))
        assert not set(part) & set(union)
        union.update(part)
    assert union == full


def test_resume_after_truncation_finishes_exactly(tmp_path) -> None:
    full = keyed(run(tmp_path / "full.jsonl"))
    path = tmp_path / "cut.jsonl"
    run(path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:13]) + lines[13][:25])  # a crash mid-line
    with pytest.warns(UserWarning, match="truncated"):
        run(path, resume=True)
    assert keyed(path) == full


def test_existing_file_needs_resume_and_the_same_run(tmp_path) -> None:
    path = run(tmp_path / "a.jsonl", trials=2)
    with pytest.raises(UsageError, match="--resume"):
        run(path, trials=2)
    with pytest.raises(UsageError, match="different run"):
        run(path, trials=2, resume=True, cfg={"max_steps": 5})


def test_bad_input() -> None:
    env = TabletopEnv()
    with pytest.raises(UsageError, match="unknown split"):
        online.plan(env, online.OnlineConfig(splits=("train",)))
    with pytest.raises(UsageError, match="unknown task"):
        online.plan(env, online.OnlineConfig(tasks=("fly",)))
    with pytest.raises(UsageError, match="shard"):
        online.parse_shard("3/3")
    cfg = online.OnlineConfig(trials=1, batch_size=4)
    wrong = lambda obs: np.zeros((len(obs["env_index"]), 3))  # noqa: E731
    with pytest.raises(UsageError, match="needs"):
        list(online.rollout_batch(env, wrong, online.plan(env, cfg)[0], cfg))


def test_chunk_execution_modes() -> None:
    env = TabletopEnv()
    calls = []

    def chunked(obs):
        calls.append(len(obs["env_index"]))
        base = np.zeros((len(obs["env_index"]), 4, 7))
        base[:, :, 0] = np.linspace(-1, 1, 4)
        return base

    batch = online.plan(env, online.OnlineConfig(trials=2, tasks=("pick",), splits=("seen",)))[0]
    cfg = online.OnlineConfig(trials=2, max_steps=8, chunk_mode="open-loop", record_actions=True)
    results = [r for _, r in online.rollout_batch(env, chunked, batch, cfg)]
    assert len(calls) == 2  # 8 steps, chunk of 4 executed open loop: 2 queries
    assert [a[0] for a in results[0]["actions"][:4]] == pytest.approx(
        [-1, -1 / 3, 1 / 3, 1], abs=1e-5
    )
    calls.clear()
    cfg = online.OnlineConfig(trials=2, max_steps=8, chunk_mode="ensemble", record_actions=True)
    results = [r for _, r in online.rollout_batch(env, chunked, batch, cfg)]
    assert len(calls) == 8  # asked every step
    # step 1 averages chunk 0's 2nd action (-1/3, age 0) with chunk 1's 1st (-1, age 1)
    w0, w1 = 1.0, np.exp(-0.01)
    expected = (w0 * (-1 / 3) + w1 * (-1.0)) / (w0 + w1)
    assert results[0]["actions"][1][0] == pytest.approx(expected, abs=1e-6)


SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_online import run, ExpertPolicy
    import vla_eval.online as online
    slow = ExpertPolicy.__call__
    def slowed(self, obs):
        time.sleep(0.01)
        return slow(self, obs)
    ExpertPolicy.__call__ = slowed
    run(__import__("pathlib").Path({out!r}), resume=True)
    """
)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path) -> None:
    full = keyed(run(tmp_path / "full.jsonl"))
    out = tmp_path / "killed.jsonl"
    script = SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    for attempt in range(2):  # kill twice, at different moments
        proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
        deadline = time.time() + 60
        want = 10 + 20 * attempt
        while time.time() < deadline:
            if out.exists() and out.read_text().count("\n") >= want:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert 0 < len(keyed_lenient(out)) < len(full)
    run(out, resume=True)
    assert keyed(out) == full


def keyed_lenient(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        out[(r["task"], r["split"], r["seed"])] = r["success"]
    return out


# --- the command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    out = tmp_path_factory.mktemp("run")
    protocol = load_protocol(Path(__file__).parents[1] / "protocols" / "smoke.toml")
    return train(protocol.train, out_dir=out, progress=False).checkpoint


def test_cli_expert_report(tmp_path, capsys) -> None:
    from vla_eval.cli import main

    out = tmp_path / "e.jsonl"
    code = main(["online", "expert", "--trials", "4", "--out", str(out), "--no-progress", "--json"])
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["schema"] == "vla-eval/report/1"
    seen = next(s for s in body["splits"] if s["split"] == "seen")["pooled"]
    assert seen["trials"] == 16 and seen["successes"] >= 15


def test_cli_checkpoint_rollout_and_bad_input(tmp_path, capsys, tiny_checkpoint) -> None:
    from vla_eval.cli import main

    out = tmp_path / "c.jsonl"
    argv = [
        "online",
        str(tiny_checkpoint),
        "--trials",
        "2",
        "--tasks",
        "pick",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    recs = records(out)
    assert len(recs) == 4 and {r["split"] for r in recs} == {"seen", "unseen"}
    assert recs[0]["policy"] == tiny_checkpoint.stem
    capsys.readouterr()
    for bad, fragment in [
        (argv, "--resume"),  # the file exists
        ([*argv[:-1], "--resume", "--max-steps", "3", "--no-progress"], "different run"),
        (["online", str(tmp_path / "none.pt")], "no such checkpoint"),
        (
            ["online", str(tiny_checkpoint), "--splits", "train", "--out", str(tmp_path / "x")],
            "unknown split",
        ),
        (
            ["online", str(tiny_checkpoint), "--tasks", "fly", "--out", str(tmp_path / "y")],
            "unknown task",
        ),
        (["online", "expert", "--env", "mujoco"], "unknown environment"),
        (["online", "expert", "--shard", "2/2"], "shard"),
    ]:
        assert main(bad) == 2, bad
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1
