"""The Ray backend on a local Ray instance: the local run's episodes, nothing lost or doubled.

The expected episodes always come from the local backend (`online.run`) on the same
config; the Ray run must give exactly those records (order aside), also when one of
its environment actors is killed in the middle of a batch and when its driver is
SIGKILLed and the run resumed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from vla_eval import online
from vla_eval.envs.factory import make_env
from vla_eval.envs.tabletop import TabletopEnv
from vla_eval.errors import UsageError
from vla_eval.policies.factory import make_policy

ray = pytest.importorskip("ray", reason="the ray extra: pip install 'vla-eval[ray]'")

from vla_eval.online.distributed import run_ray  # noqa: E402
from vla_eval.online.distributed.actors import PolicyServer  # noqa: E402
from vla_eval.online.distributed.ray_run import check_reachable  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module; its address, for drivers in other processes."""
    # Callables defined here travel to the actors by value (this file is no importable module).
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def config(**kw) -> online.OnlineConfig:
    return online.OnlineConfig(trials=kw.pop("trials", 3), batch_size=kw.pop("batch_size", 4), **kw)


def local_run(path: Path, spec: str, cfg: online.OnlineConfig) -> dict:
    env = make_env("tabletop")
    named = make_policy(spec, env, env_name="tabletop")
    online.run(env, named.policy, cfg, path, policy_id=named.policy_id, progress=False)
    return keyed(path)


def keyed(path: Path) -> dict:
    """Every record of a file by (task, split, seed); a duplicate fails the test."""
    out: dict = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        key = (record["task"], record["split"], record["seed"])
        assert key not in out, f"duplicate {key}"
        out[key] = record
    return out


def test_expert_gives_the_local_runs_records_and_resumes_a_local_file(cluster, tmp_path):
    cfg = config(policy_name="expert")
    expected = local_run(tmp_path / "local.jsonl", "expert", cfg)
    assert len(expected) == len(TabletopEnv().tasks) * 3
    result = run_ray(
        ("tabletop", {}), ("expert", {}), cfg, tmp_path / "ray.jsonl", workers=2, progress=False
    )
    assert keyed(result.out) == expected
    assert result.written == len(expected) and result.requeued == ()
    # A local run cut short, finished by Ray: the records of one uninterrupted run.
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join((tmp_path / "local.jsonl").read_text().splitlines(True)[:9]))
    resumed = run_ray(
        ("tabletop", {}), ("expert", {}), cfg, cut, workers=2, resume=True, progress=False
    )
    assert resumed.written == len(expected) - 9
    assert keyed(cut) == expected


def test_tinyvla_checkpoint_gives_the_local_runs_records(cluster, tmp_path, smoke_checkpoint):
    cfg = config(policy_name=smoke_checkpoint.stem)
    expected = local_run(tmp_path / "local.jsonl", str(smoke_checkpoint), cfg)
    result = run_ray(
        ("tabletop", {}),
        (str(smoke_checkpoint), {}),
        cfg,
        tmp_path / "ray.jsonl",
        workers=2,
        progress=False,
    )
    assert keyed(result.out) == expected
    # the fingerprint holds the checkpoint's hash, as locally
    assert {r["run"] for r in expected.values()} == {r["run"] for r in keyed(result.out).values()}


def claim(marker: str) -> bool:
    """True for the first process to ask (of every actor of the test)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return False
    return True


class StallingTabletop(TabletopEnv):
    """The tabletop world that, once per test, stalls in its second batch at the step after
    an episode finished (so that episode was sent), having said where in `marker`."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker, self.resets, self.finished = marker, 0, []

    def reset(self, seeds, tasks):
        self.resets += 1
        self.current = [(t.name, t.split, int(s)) for t, s in zip(tasks, seeds, strict=True)]
        return super().reset(seeds, tasks)

    def step(self, actions):
        if self.finished and claim(self.marker):
            name = ray.get_runtime_context().get_actor_name()
            Path(self.marker + ".json").write_text(json.dumps([name, self.finished]))
            time.sleep(30)  # until killed
        obs, reward, done, info = super().step(actions)
        if self.resets >= 2:
            self.finished = [k for k, d in zip(self.current, done, strict=True) if d]
        return obs, reward, done, info


def kill_when_stalled(marker: Path, out: Path, killed: list) -> None:
    """Wait for the stalled worker, and for its finished episodes to be in `out`; kill it."""
    note = Path(str(marker) + ".json")
    deadline = time.time() + 25
    while time.time() < deadline:
        if note.exists():
            name, finished = json.loads(note.read_text())
            if out.exists() and all(tuple(k) in keyed_lenient(out) for k in finished):
                ray.kill(ray.get_actor(name))
                killed.append((name, [tuple(k) for k in finished]))
                return
        time.sleep(0.02)


def keyed_lenient(path: Path) -> set:
    keys = set()
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # the line being written
        keys.add((r["task"], r["split"], r["seed"]))
    return keys


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(cluster, tmp_path):
    cfg = config(policy_name="expert")
    expected = local_run(tmp_path / "local.jsonl", "expert", cfg)
    marker, out, killed = tmp_path / "stall", tmp_path / "ray.jsonl", []
    killer = threading.Thread(target=kill_when_stalled, args=(marker, out, killed))
    killer.start()
    result = run_ray(
        functools.partial(StallingTabletop, str(marker)),
        ("expert", {}),
        cfg,
        out,
        workers=2,
        progress=False,
    )
    killer.join()
    assert killed, "the worker never stalled"
    # its batch ran again on a fresh worker; the episodes it had already sent stay single
    assert len(result.requeued) == 1 and killed[0][1]
    assert keyed(out) == expected


DRIVER = textwrap.dedent(
    """
    import sys, time
    from vla_eval import online
    from vla_eval.envs.tabletop import TabletopEnv
    from vla_eval.online.distributed import run_ray

    class SlowTabletop(TabletopEnv):
        def step(self, actions):
            time.sleep(0.01)
            return super().step(actions)

    cfg = online.OnlineConfig(trials=3, batch_size=4, policy_name="expert")
    run_ray(SlowTabletop, ("expert", {{}}), cfg, {out!r}, workers=2, address={address!r},
            resume=True, progress=False)
    """
)


def test_driver_sigkill_then_resume_gives_the_local_set(cluster, tmp_path):
    cfg = config(policy_name="expert")
    expected = local_run(tmp_path / "local.jsonl", "expert", cfg)
    out = tmp_path / "ray.jsonl"
    script = DRIVER.format(address=cluster, out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and len(keyed_lenient(out)) >= 6:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    before = len(keyed_lenient(out))  # a line cut by the kill is not counted
    assert 6 <= before < len(expected)
    result = run_ray(
        ("tabletop", {}), ("expert", {}), cfg, out, workers=2, resume=True, progress=False
    )
    assert keyed(out) == expected
    assert result.written == len(expected) - before


def test_bad_options_are_one_line_usage_errors(cluster, tmp_path):
    cfg = config(policy_name="x")
    spec = ("tabletop", {})
    with pytest.raises(UsageError, match="--workers must be at least 1"):
        run_ray(spec, ("expert", {}), cfg, tmp_path / "a.jsonl", workers=0)
    with pytest.raises(UsageError, match="--workers 3 needs 3 CPUs; the Ray cluster has 2"):
        run_ray(spec, ("expert", {}), cfg, tmp_path / "a.jsonl", workers=3)
    with pytest.raises(
        UsageError, match="--policy-gpus needs 1 GPUs in all; the Ray cluster has 0"
    ):
        run_ray(spec, ("ckpt.pt", {}), cfg, tmp_path / "a.jsonl", workers=1, policy_gpus=1)
    with pytest.raises(UsageError, match="unknown environment 'nowhere'"):
        run_ray(("nowhere", {}), ("expert", {}), cfg, tmp_path / "a.jsonl", workers=1)
    # raised inside the policy actor, arriving as itself
    with pytest.raises(UsageError, match=r"missing\.pt: no such checkpoint file"):
        run_ray(spec, (str(tmp_path / "missing.pt"), {}), cfg, tmp_path / "a.jsonl", workers=1)
    # nothing listens there: refused at once (Ray itself would retry for minutes)
    with pytest.raises(UsageError, match=r"--ray-address 127\.0\.0\.1:9: cannot reach it"):
        check_reachable("127.0.0.1:9")
    (tmp_path / "full.jsonl").write_text('{"task": "pick"}\n')
    with pytest.raises(UsageError, match="pass --resume"):
        run_ray(spec, ("expert", {}), cfg, tmp_path / "full.jsonl", workers=1)


def test_without_ray_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r"pip install 'vla-eval\[ray\]'"):
        run_ray(("tabletop", {}), ("expert", {}), config(), tmp_path / "a.jsonl", workers=1)


class CountingPolicy:
    """A stateful policy: each environment's action depends on its calls since its reset."""

    def __init__(self, env) -> None:
        self.dim, self.calls = env.action_dim, np.zeros(256, int)

    def reset(self, env_indices) -> None:
        self.calls[env_indices] = 0

    def __call__(self, obs):
        rows = obs["env_index"]
        self.calls[rows] += 1
        action = np.zeros((len(rows), self.dim))
        action[:, 0] = np.where(self.calls[rows] % 5 < 2, 1.0, -1.0)
        action[:, 1] = np.clip(obs["state"][:, 0] * 3, -1, 1)
        return action


def test_a_stateful_policy_gets_a_server_per_worker_and_its_resets(cluster, tmp_path):
    cfg = config(policy_name="counting", trials=2, max_steps=12, record_actions=True)
    env = TabletopEnv()
    online.run(env, CountingPolicy(env), cfg, tmp_path / "local.jsonl", progress=False)
    expected = keyed(tmp_path / "local.jsonl")
    result = run_ray(
        ("tabletop", {}),
        CountingPolicy,
        cfg,
        tmp_path / "ray.jsonl",
        workers=2,
        progress=False,
        policy_in_env=False,  # the policy actor path (the default with GPUs)
    )
    # the executed actions are recorded, so a missed reset or shared memory would show
    assert keyed(result.out) == expected
    assert ray.util.list_named_actors() == []  # every actor ended with the run


def test_the_policy_server_answers_waiting_requests_with_one_call():
    sizes = []

    def make(env):
        def policy(obs):
            sizes.append(len(obs["env_index"]))
            return obs["state"][:, :2] * 2 + obs["env_index"][:, None]

        return policy

    server = PolicyServer(("tabletop", {}), make)
    rng = np.random.default_rng(0)
    requests = [
        {"state": rng.normal(size=(n, 4)), "instruction": ["x"] * n, "env_index": np.arange(n)}
        for n in (3, 1, 4)
    ]

    async def ask_together():
        return await asyncio.gather(*(server.act(r) for r in requests))

    answers = [actions for _, actions in asyncio.run(ask_together())]
    assert sizes == [8]  # one merged call for the three waiting requests
    for r, actions in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(actions, r["state"][:, :2] * 2 + r["env_index"][:, None])
    server.close()


class StallingCountingPolicy(CountingPolicy):
    """`CountingPolicy` whose actor, once per test, stalls in its second batch until killed."""

    def __init__(self, env, marker: str) -> None:
        super().__init__(env)
        self.marker, self.resets = marker, 0

    def reset(self, env_indices) -> None:
        self.resets += 1
        super().reset(env_indices)

    def __call__(self, obs):
        if self.resets >= 2 and claim(self.marker):
            name = ray.get_runtime_context().get_actor_name()
            Path(self.marker + ".json").write_text(json.dumps([name, []]))
            time.sleep(30)
        return super().__call__(obs)


def test_a_restarted_policy_actor_reruns_the_batch_of_a_stateful_policy(cluster, tmp_path):
    cfg = config(policy_name="counting", trials=2, max_steps=12, record_actions=True)
    env = TabletopEnv()
    online.run(env, CountingPolicy(env), cfg, tmp_path / "local.jsonl", progress=False)
    marker, out = tmp_path / "stall", tmp_path / "ray.jsonl"

    def restart_when_stalled() -> None:
        note = Path(str(marker) + ".json")
        deadline = time.time() + 25
        while time.time() < deadline and not note.exists():
            time.sleep(0.02)
        ray.kill(ray.get_actor(json.loads(note.read_text())[0]), no_restart=False)

    killer = threading.Thread(target=restart_when_stalled)
    killer.start()
    policy = functools.partial(StallingCountingPolicy, marker=str(marker))
    result = run_ray(
        ("tabletop", {}), policy, cfg, out, workers=2, progress=False, policy_in_env=False
    )
    killer.join()
    assert len(result.requeued) == 1
    assert keyed(out) == keyed(tmp_path / "local.jsonl")


def test_a_failing_policy_stops_the_run_with_one_line_and_keeps_the_episodes(cluster, tmp_path):
    def make(env):
        calls = []

        def policy(obs):
            calls.append(1)
            if len(calls) > 40:
                raise ValueError("the weights are NaN")
            return np.zeros((len(obs["env_index"]), env.action_dim))

        return policy

    out = tmp_path / "ray.jsonl"
    cfg = config(policy_name="failing", max_steps=10)
    with pytest.raises(UsageError, match="ValueError: the weights are NaN") as caught:
        run_ray(("tabletop", {}), make, cfg, out, workers=1, progress=False)
    assert "\n" not in str(caught.value)
    # every batch before the failure: 10 steps each, 40 calls
    assert len(keyed(out)) == 4 * 4
