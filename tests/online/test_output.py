"""What a run writes: the episode record's fields and order, the environment's provenance."""

from __future__ import annotations

import numpy as np

from vla_eval import online
from vla_eval.envs.tabletop import TabletopEnv


def test_episode_record_fields_in_file_order() -> None:
    env = TabletopEnv()
    cfg = online.OnlineConfig(trials=1, policy_name="mine")
    work = online.plan(env, cfg)[0][0]
    provenance = online.env_provenance(env)
    result = {"success": True, "steps": 4, "return": 1.0, "instruction": "pick up the red block"}
    record = online.episode_record(work, result, cfg, provenance, "abc")
    assert list(record) == [
        "policy",
        "task",
        "split",
        "seed",
        "success",
        "steps",
        "return",
        "env",
        "run",
        "instruction",
    ]
    assert record["policy"] == "mine" and record["run"] == "abc"
    assert (record["task"], record["split"], record["seed"]) == work.key
    assert record["env"]["task"] == work.task.key and record["env"]["seed"] == work.seed
    assert record["env"]["name"] == "tabletop" and record["env"]["version"] == env.version
    assert record["env"]["packages"]["numpy"] == np.__version__
    # Executed actions are written only when recorded.
    with_actions = online.episode_record(work, {**result, "actions": [[0.0]]}, cfg, provenance, "")
    assert list(with_actions)[-2:] == ["instruction", "actions"]
