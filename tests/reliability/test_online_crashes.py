"""`online` under kills and concurrent writers: SIGKILLs at seeded random moments (whole
runs and shards) then --resume give exactly the uninterrupted run's episodes; a second
writer on the same episodes file is refused at once and the first's file is intact; a
folder as --out is one clear error; a huge --trials plans in constant memory.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from vla_eval import online
from vla_eval.envs.tabletop import ScriptedExpert, TabletopEnv
from vla_eval.errors import UsageError


class Expert:
    """The scripted expert, slowed so a run lasts long enough to be killed mid-way."""

    def __init__(self, env: TabletopEnv, delay: float = 0.0) -> None:
        self.env, self.expert, self.delay = env, ScriptedExpert(), delay

    def reset(self, env_indices) -> None:
        self.expert.reset(self.env, env_indices)

    def __call__(self, obs):
        time.sleep(self.delay)
        return self.expert.act(self.env)[obs["env_index"]]


def run(path: Path, delay: float = 0.0, **kw) -> Path:
    env = TabletopEnv()
    cfg = online.OnlineConfig(trials=4, policy_name="expert", batch_size=4)
    return online.run(env, Expert(env, delay), cfg, path, progress=False, **kw)


SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {here!r})
    from test_online_crashes import run
    from pathlib import Path
    run(Path({out!r}), delay=0.03, resume=True, shard={shard!r})
    """
)


def _start(out: Path, shard: tuple[int, int] = (0, 1)) -> subprocess.Popen:
    script = SCRIPT.format(here=str(Path(__file__).parent), out=str(out), shard=shard)
    return subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)


def episodes(path: Path) -> dict[tuple[str, str, int], tuple]:
    """(task, split, seed) -> outcome; a duplicate or a malformed line fails the test."""
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        key = (r["task"], r["split"], r["seed"])
        assert key not in out, f"duplicate {key}"
        out[key] = (r["success"], r["steps"], r["return"])
    return out


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return episodes(run(tmp_path_factory.mktemp("full") / "full.jsonl"))


@pytest.mark.slow
@pytest.mark.parametrize("shards", [1, 2])
def test_random_sigkills_then_resume_equal_the_uninterrupted_run(
    tmp_path: Path, full: dict, shards: int
) -> None:
    rng = random.Random(18 + shards)
    union: dict = {}
    kills = 0
    for i in range(shards):
        out = tmp_path / f"shard{i}.jsonl"
        for _ in range(2):
            have = _lines(out)
            want = have + rng.randint(1, max(1, len(full) // shards - have - 4))
            proc = _start(out, (i, shards))
            deadline = time.time() + 60
            while time.time() < deadline and _lines(out) < want:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.05))  # anywhere in the step loop or the write
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate()
            assert proc.returncode in (0, -signal.SIGKILL), err.decode()
            kills += proc.returncode == -signal.SIGKILL
        run(out, resume=True, shard=(i, shards))
        part = episodes(out)
        assert not set(part) & set(union)
        union.update(part)
    assert kills >= 2
    assert union == full


@pytest.mark.slow
def test_second_writer_is_refused_and_the_first_is_intact(tmp_path: Path, full: dict) -> None:
    out = tmp_path / "episodes.jsonl"
    first = _start(out)
    lock = tmp_path / ".episodes.jsonl.lock"
    deadline = time.time() + 30
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.01)
    for resume in (False, True):
        with pytest.raises(UsageError, match=rf"episodes file .* \(pid {first.pid}\)"):
            run(out, resume=resume)
    cmd = [sys.executable, "-m", "vla_eval.cli", "online", "expert", "--trials", "4"]
    second = subprocess.run([*cmd, "--out", str(out), "--resume"], capture_output=True, text=True)
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and f"pid {first.pid}" in second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    assert episodes(out) == full


def test_a_folder_as_out_is_one_clear_error(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "vla_eval.cli", "online", "expert", "--trials", "1"]
    for flags in ([], ["--resume"]):
        proc = subprocess.run(
            [*cmd, "--out", str(tmp_path), *flags], capture_output=True, text=True
        )
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and "is a folder" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_ten_million_trials_plan_in_constant_memory() -> None:
    env = TabletopEnv()
    tasks = len(env.tasks)
    tracemalloc.start()
    try:
        cfg = online.OnlineConfig(trials=10_000_000, batch_size=64)
        planned = online.plan(env, cfg)
        shard = online.shard_batches(planned, (1, 3))
        first, last = shard[0], planned[-1]
        count = shard.episodes()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # bytes; the old list of every episode needed gigabytes
    total = tasks * 10_000_000
    assert len(planned) == -(-total // 64)
    assert [w.seed for w in first] == list(range(64, 128))
    assert last[-1].seed == 9_999_999 and len(last) == total - 64 * (len(planned) - 1)
    # Shard 1/3 holds batches 1, 4, 7, ...: count them by hand.
    n_batches = len(range(1, len(planned), 3))
    full_batches = n_batches - (1 if (len(planned) - 1) % 3 == 1 else 0)
    expected = full_batches * 64 + (len(last) if (len(planned) - 1) % 3 == 1 else 0)
    assert count == expected
    assert planned.batch_of(("pick", first[0].task.split, 64)) is not None


def test_lock_file_is_beside_the_episodes_file_and_reusable(tmp_path: Path) -> None:
    out = run(tmp_path / "e.jsonl")
    assert (tmp_path / ".e.jsonl.lock").read_text() == f"{os.getpid()}\n"
    run(out, resume=True)  # the stale lock file blocks nobody
