"""Shard manifests: the keys a manifest derives equal the run plan's own batches, and the
check over shard files names missing shards and missing episodes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.envs.base import Task
from vla_eval.episodes.manifest import (
    ShardManifest,
    check_shards,
    manifest_path,
    read_manifest,
    write_manifest,
)
from vla_eval.errors import UsageError
from vla_eval.online.work import Plan, shard_batches


def _manifest(tasks, trials, batch, order, shard, run="r1"):
    return ShardManifest(run, shard, tuple((t.name, t.split) for t in tasks), trials, batch, order)


@settings(max_examples=80, deadline=None)
@given(
    n_tasks=st.integers(1, 5),
    trials=st.integers(1, 9),
    batch=st.integers(1, 12),
    count=st.integers(1, 6),
    order=st.sampled_from(["task", "seed"]),
)
def test_keys_equal_the_plans_shard(n_tasks, trials, batch, count, order):
    tasks = [Task(f"t{i}", f"t{i}", "seen" if i % 2 else "unseen") for i in range(n_tasks)]
    plan = Plan(tasks, trials, batch, order)
    union = []
    for i in range(count):
        expected = [w.key for b in shard_batches(plan, (i, count)) for w in b]
        manifest = _manifest(tasks, trials, batch, order, (i, count))
        assert list(manifest.keys()) == expected
        assert manifest.planned() == len(expected)
        union += expected
    assert sorted(union) == sorted(w.key for b in plan for w in b)


def test_round_trip_and_malformed(tmp_path):
    episodes = tmp_path / "run.jsonl"
    m = ShardManifest("abc", (1, 3), (("pick", "seen"), ("pick", "unseen")), 4, 3, "task", "p")
    write_manifest(episodes, m)
    assert manifest_path(episodes).name == "run.jsonl.shard.json"
    assert read_manifest(episodes) == m
    data = json.loads(manifest_path(episodes).read_text())
    assert data["planned_episodes"] == 3  # 8 episodes, batches of 3: shard 1 has batch 1 only
    data["shard"] = [3, 3]
    manifest_path(episodes).write_text(json.dumps(data))
    with pytest.raises(UsageError, match="not a shard manifest"):
        read_manifest(episodes)
    assert read_manifest(tmp_path / "other.jsonl") is None


def _shard_files(tmp_path, count, drop_shard=None, drop_key=None, run="r1"):
    tasks = [Task("pick", "pick", "seen"), Task("pour", "pour", "unseen")]
    files, present = [], {}
    for i in range(count):
        if i == drop_shard:
            continue
        path = tmp_path / f"{run}-{i}.jsonl"
        path.write_text("")
        m = _manifest(tasks, 5, 2, "task", (i, count), run)
        write_manifest(path, m)
        present[str(path)] = {k for k in m.keys() if k != drop_key}
        files.append(path)
    return files, present


def test_complete_shards_have_no_problems(tmp_path):
    files, present = _shard_files(tmp_path, 3)
    assert check_shards(files, present) == []


def test_a_missing_shard_is_named(tmp_path):
    files, present = _shard_files(tmp_path, 3, drop_shard=1)
    (problem,) = check_shards(files, present)
    # 10 episodes in batches of 2 -> 5 batches; shard 1/3 holds batches 1 and 4: 4 episodes
    assert "shard 1/3 is missing (4 planned episodes" in problem


def test_missing_episodes_are_named(tmp_path):
    files, present = _shard_files(tmp_path, 2, drop_key=("pour", "unseen", 3))
    (problem,) = check_shards(files, present)
    assert "lacks 1 of its" in problem and "pour/unseen seed 3" in problem


def test_mixed_runs_are_refused_unless_allowed(tmp_path):
    a, pa = _shard_files(tmp_path, 2, run="r1")
    b, pb = _shard_files(tmp_path, 2, run="r2")
    with pytest.raises(UsageError, match="2 different runs"):
        check_shards(a + b, {**pa, **pb})
    assert check_shards(a + b, {**pa, **pb}, allow_mixed_runs=True) == []


def test_the_same_shard_twice_is_refused(tmp_path):
    files, present = _shard_files(tmp_path, 2)
    copy = tmp_path / "copy.jsonl"
    copy.write_text("")
    write_manifest(copy, read_manifest(files[0]))
    with pytest.raises(UsageError, match="same shard 0/2"):
        check_shards([*files, copy], present)
