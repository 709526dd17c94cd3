"""Plug-in policies in whole runs: reset(env_indices), a policy that raises, resume, shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vla_eval import online
from vla_eval.cli import main
from vla_eval.envs.tabletop import ExpertPolicy, TabletopEnv
from vla_eval.online import PolicyError

ROOT = Path(__file__).parents[2]
PLUGINS = "tests.policies.plugins"


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def keyed(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        key = (r["task"], r["split"], r["seed"])
        assert key not in out, f"duplicate {key}"
        out[key] = (r["success"], r["steps"], r["return"], r["run"])
    return out


def cli(*argv: str) -> int:
    return main(["online", *argv, "--no-progress"])


def test_reset_gets_each_batchs_positions_and_clears_their_state(tmp_path) -> None:
    from tests.policies import plugins

    env = TabletopEnv()
    cfg = dict(trials=5, tasks=("pick", "place"), policy_name="x")
    # Episodes of the plain expert, for the hand-derived expectation below.
    expert = online.run(
        env, ExpertPolicy(env), online.OnlineConfig(**cfg), tmp_path / "e.jsonl", progress=False
    )
    plugins.RESETS.clear()
    delayed = plugins.delayed(env, delay=3)
    path = online.run(
        env, delayed, online.OnlineConfig(**cfg, batch_size=8), tmp_path / "d.jsonl", progress=False
    )
    # 20 episodes in batches of 8, 8, 4: each batch's positions, as an int array.
    assert [r.tolist() for r in plugins.RESETS] == [list(range(8)), list(range(8)), list(range(4))]
    assert all(r.dtype.kind == "i" for r in plugins.RESETS)
    # Each episode is the expert's after 3 idle steps, so only if every queue was refilled.
    plain, late = keyed(expert), keyed(path)
    assert set(plain) == set(late)
    for key, (success, steps, _, _) in plain.items():
        assert success and late[key][:2] == (True, steps + 3), key


def test_a_policy_that_raises_stops_the_run_and_resume_finishes_it(tmp_path, capsys) -> None:
    full, out = tmp_path / "full.jsonl", tmp_path / "run.jsonl"
    common = ["--policy", f"{PLUGINS}:flaky", "--tasks", "pick,place", "--trials", "4"]
    common += ["--batch-size", "4"]
    assert cli(*common, "--out", str(full)) == 0
    capsys.readouterr()
    assert cli(*common, "--policy-arg", "fail_at=30", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "policy flaky raised in its call at step" in err
    assert "RuntimeError: deliberate failure at call 30" in err
    kept = keyed(out)
    assert 0 < len(kept) < 16 and all(kept[k] == v for k, v in keyed(full).items() if k in kept)
    assert cli(*common, "--out", str(out), "--resume") == 0
    assert keyed(out) == keyed(full)


def test_the_python_api_raises_policy_error_with_the_cause(tmp_path) -> None:
    from tests.policies import plugins

    env = TabletopEnv()
    cfg = online.OnlineConfig(trials=2, tasks=("pick",), batch_size=2, policy_name="flaky")
    with pytest.raises(PolicyError, match="deliberate failure at call 1") as caught:
        online.run(env, plugins.flaky(env, fail_at=1), cfg, tmp_path / "a.jsonl", progress=False)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_shards_of_a_plugin_policy_add_up_to_the_full_run(tmp_path) -> None:
    common = ["--policy", f"{PLUGINS}:delayed", "--policy-arg", "delay=1", "--trials", "3"]
    common += ["--tasks", "pick,stack", "--batch-size", "5"]
    assert cli(*common, "--out", str(tmp_path / "full.jsonl")) == 0
    union: dict = {}
    for i in range(3):
        part = tmp_path / f"part{i}.jsonl"
        assert cli(*common, "--shard", f"{i}/3", "--out", str(part)) == 0
        got = keyed(part)
        assert got and not set(got) & set(union)
        union.update(got)
    assert union == keyed(tmp_path / "full.jsonl")


def _lenient_count(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.endswith("}"))


@pytest.mark.slow
def test_sigkill_then_resume_with_a_plugin_policy(tmp_path) -> None:
    common = ["--policy", f"{PLUGINS}:flaky", "--policy-arg", "sleep=0.01", "--trials", "4"]
    common += ["--tasks", "pick,place", "--batch-size", "2"]
    assert cli(*common, "--out", str(tmp_path / "full.jsonl")) == 0
    out = tmp_path / "killed.jsonl"
    cmd = [sys.executable, "-m", "vla_eval.cli", "online", *common, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, "--no-progress"], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and _lenient_count(out) < 5:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert 5 <= _lenient_count(out) < 16
    assert cli(*common, "--out", str(out), "--resume") == 0
    assert keyed(out) == keyed(tmp_path / "full.jsonl")


def test_env_args_and_preferred_batch_size_reach_the_environment(monkeypatch, tmp_path) -> None:
    import vla_eval.envs.factory as factory

    seen: dict = {}

    class Preferring(TabletopEnv):
        preferred_batch_size = 3

    def fake_make_env(name, **options):
        seen.update(name=name, options=options)
        return Preferring()

    monkeypatch.setattr(factory, "make_env", fake_make_env)
    argv = ["expert", "--tasks", "pick", "--splits", "seen", "--trials", "4", "--json"]
    argv += ["--env-arg", "size=[64, 64]", "--env-arg", "mode=rgb", "--env-arg", "fast=true"]
    argv += ["--workers", "2", "--success-key", "is_success", "--out", str(tmp_path / "a.jsonl")]
    assert cli(*argv) == 0
    assert seen == {
        "name": "tabletop",
        "options": {
            "size": [64, 64],
            "mode": "rgb",
            "fast": True,
            "workers": 2,
            "success_key": "is_success",
        },
    }
    # 4 episodes in the environment's preferred batches of 3: two batches.
    from tests.policies import plugins

    plugins.RESETS.clear()
    argv = ["--policy", f"{PLUGINS}:delayed", "--tasks", "pick", "--splits", "seen"]
    assert cli(*argv, "--trials", "4", "--out", str(tmp_path / "b.jsonl")) == 0
    assert [len(r) for r in plugins.RESETS] == [3, 1]
    assert np.array_equal(plugins.RESETS[1], [0])
