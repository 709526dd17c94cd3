"""The planned work of a run: tasks chosen, fixed batches, shards, the run fingerprint."""

from __future__ import annotations

import pytest

from vla_eval import online
from vla_eval.envs.tabletop import TabletopEnv
from vla_eval.errors import UsageError


def test_plan_is_every_task_and_seed_in_fixed_batches() -> None:
    env = TabletopEnv()
    cfg = online.OnlineConfig(trials=3, splits=("unseen", "seen"), batch_size=5)
    batches = online.plan(env, cfg)
    work = [w for b in batches for w in b]
    assert [len(b) for b in batches] == [5, 5, 5, 5, 4]  # 8 tasks x 3 seeds = 24
    # Splits in the order asked, tasks by name, seeds 0..trials-1.
    names = sorted({t.name for t in env.tasks})
    expected = [(n, s, k) for s in ("unseen", "seen") for n in names for k in range(3)]
    assert [w.key for w in work] == expected
    assert online.plan(env, cfg) == batches  # depends on nothing but env and config


def test_tasks_filter_and_shards_partition_the_batches() -> None:
    env = TabletopEnv()
    cfg = online.OnlineConfig(trials=4, tasks=("pick", "pour"), batch_size=3)
    batches = online.plan(env, cfg)
    assert {w.task.name for b in batches for w in b} == {"pick", "pour"}
    shards = [online.shard_batches(batches, (i, 3)) for i in range(3)]
    assert shards[1] == batches[1::3]
    assert sorted(w.key for s in shards for b in s for w in b) == sorted(
        w.key for b in batches for w in b
    )
    assert online.parse_shard("2/3") == (2, 3)


def test_run_id_follows_what_changes_episodes_only() -> None:
    env = TabletopEnv()
    base = online.OnlineConfig(trials=2)
    rid = online.run_id(env, base, "p")
    assert len(rid) == 16 and rid == online.run_id(env, base, "p")
    # Batch size and action recording do not change episodes...
    assert online.run_id(env, online.OnlineConfig(trials=2, batch_size=3), "p") == rid
    assert online.run_id(env, online.OnlineConfig(trials=2, record_actions=True), "p") == rid
    # ...the policy, the step limit and the trials do.
    assert online.run_id(env, base, "q") != rid
    assert online.run_id(env, online.OnlineConfig(trials=2, max_steps=5), "p") != rid
    assert online.run_id(env, online.OnlineConfig(trials=3), "p") != rid


def test_bad_input() -> None:
    env = TabletopEnv()
    with pytest.raises(UsageError, match="unknown split"):
        online.plan(env, online.OnlineConfig(splits=("train",)))
    with pytest.raises(UsageError, match="unknown task"):
        online.plan(env, online.OnlineConfig(tasks=("fly",)))
    for text in ("3/3", "1", "a/b", "0/0"):
        with pytest.raises(UsageError, match="shard"):
            online.parse_shard(text)
    for kwargs, fragment in [
        ({"trials": 0}, "--trials"),
        ({"batch_size": 0}, "batch size"),
        ({"max_steps": 0}, "--max-steps"),
        ({"chunk_mode": "closed"}, "chunk mode"),
        ({"execute": 0}, "--execute"),
        ({"splits": ()}, "no splits"),
    ]:
        with pytest.raises(UsageError, match=fragment):
            online.OnlineConfig(**kwargs)
