"""Other tools' episode files: CSV and LeRobot's eval_info.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_eval.episodes import (
    load_episodes,
)
from vla_eval.errors import DataError


def test_csv_reader(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(
        "task,split,seed,success\npick,seen,0,1\npick,seen,1,false\n\nplace,unseen,0,TRUE\n"
    )
    table = load_episodes([path])
    assert table.task.tolist() == ["pick", "pick", "place"]
    assert table.success.tolist() == [True, False, True]
    assert table.line.tolist() == [2, 3, 5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task,seed,success\npick,0,1\n", "lacks column"),
        ("task,split,seed,success\npick,seen,x,1\n", r"runs\.csv:2: seed must be"),
        ("task,split,seed,success\npick,seen,0,maybe\n", r"runs\.csv:2: success must be"),
        ("task,split,seed,success\npick,seen,0\n", r"runs\.csv:2: expected 4 columns"),
        ("task,split,seed,success\npick,seen,0,1\npick,seen,0,0\n", r"runs\.csv:3: duplicate"),
    ],
)
def test_csv_errors(tmp_path, text, message):
    path = tmp_path / "runs.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_episodes([path])


def _lerobot_single(successes, seeds):
    # Layout written by lerobot's eval script for one environment.
    return {
        "per_episode": [
            {
                "episode_ix": i,
                "sum_reward": float(s),
                "max_reward": float(s),
                "success": s,
                "seed": seed,
            }
            for i, (s, seed) in enumerate(zip(successes, seeds, strict=True))
        ],
        "aggregated": {
            "avg_sum_reward": float(np.mean(successes)),
            "avg_max_reward": float(np.mean(successes)),
            "pc_success": 100 * float(np.mean(successes)),
            "eval_s": 12.5,
            "eval_ep_s": 2.5,
        },
    }


def test_lerobot_single_env_eval_info(tmp_path):
    folder = tmp_path / "pusht"
    folder.mkdir()
    path = folder / "eval_info.json"
    path.write_text(json.dumps(_lerobot_single([True, False, True], [1000, 1001, 1002]), indent=2))
    table = load_episodes([path], split="seen")
    assert table.task.tolist() == ["pusht"] * 3
    assert table.split.tolist() == ["seen"] * 3
    assert table.seed.tolist() == [1000, 1001, 1002]
    assert table.success.tolist() == [True, False, True]


def test_lerobot_seedless_episodes_fall_back_to_index(tmp_path):
    path = tmp_path / "eval_info.json"
    path.write_text(json.dumps(_lerobot_single([True, False], [None, None])))
    assert load_episodes([path]).seed.tolist() == [0, 1]


def test_lerobot_multi_task_eval_info(tmp_path):
    # Layout written by lerobot-eval for suites (e.g. LIBERO): per_task / per_group / overall.
    info = {
        "per_task": [
            {
                "task_group": "libero_spatial",
                "task_id": tid,
                "metrics": {
                    "sum_rewards": [1.0, 0.0],
                    "max_rewards": [1.0, 0.0],
                    "successes": flags,
                    "video_paths": [],
                },
            }
            for tid, flags in ((0, [True, False]), (1, [False, False]))
        ],
        "per_group": {"libero_spatial": {"pc_success": 25.0, "n_episodes": 4}},
        "overall": {"pc_success": 25.0, "n_episodes": 4},
    }
    path = tmp_path / "eval_info.json"
    path.write_text(json.dumps(info))
    table = load_episodes([path])
    assert table.task.tolist() == ["libero_spatial/0"] * 2 + ["libero_spatial/1"] * 2
    assert table.seed.tolist() == [0, 1, 0, 1]
    assert table.success.tolist() == [True, False, False, False]
    assert table.split.tolist() == ["default"] * 4


def test_json_that_is_not_lerobot_is_rejected(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(DataError, match=r"not a LeRobot eval_info\.json"):
        load_episodes([path])
