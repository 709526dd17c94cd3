"""LeRobot's eval_info.json files, built with the structure of LeRobot's own writer and
written the way it writes them (``json.dump(info, f, indent=2)``); the layouts and their
sources are described in `tests/episodes/test_other_formats.py`. Shared by the tests of the
readers, the report and the command line.
"""

from __future__ import annotations

import json

import numpy as np


def lerobot_single(successes, start_seed):
    """`eval_policy`'s info dict for one environment (seeds None when start_seed is None)."""
    n = len(successes)
    seeds = [None] * n if start_seed is None else list(range(start_seed, start_seed + n))
    rewards = [float(s) * 0.9 for s in successes]
    return {
        "per_episode": [
            {"episode_ix": i, "sum_reward": r, "max_reward": r, "success": s, "seed": seed}
            for i, (r, s, seed) in enumerate(zip(rewards, successes, seeds, strict=True))
        ],
        "aggregated": {
            "avg_sum_reward": float(np.nanmean(rewards)),
            "avg_max_reward": float(np.nanmean(rewards)),
            "pc_success": float(np.nanmean(successes) * 100),
            "eval_s": 12.5,
            "eval_ep_s": 12.5 / n,
        },
        "video_paths": ["outputs/eval/videos/eval_episode_0.mp4"],
    }


def lerobot_suite(tasks):
    """`eval_policy_all`'s info dict; `tasks` maps (task_group, task_id) -> successes."""
    per_task, groups = [], {}
    for (group, tid), successes in tasks.items():
        metrics = {
            "sum_rewards": [float(s) for s in successes],
            "max_rewards": [float(s) for s in successes],
            "successes": list(successes),
            "video_paths": [],
            "predicted_video_paths": [],
        }
        per_task.append({"task_group": group, "task_id": tid, "metrics": metrics})
        groups.setdefault(group, []).extend(successes)

    def agg(xs):
        return {
            "avg_sum_reward": float(np.mean(xs)),
            "avg_max_reward": float(np.mean(xs)),
            "pc_success": float(np.mean(xs)) * 100,
            "n_episodes": len(xs),
            "video_paths": [],
            "predicted_video_paths": [],
        }

    everything = [s for xs in groups.values() for s in xs]
    overall = {**agg(everything), "eval_s": 40.0, "eval_ep_s": 40.0 / len(everything)}
    return {
        "per_task": per_task,
        "per_group": {g: agg(xs) for g, xs in groups.items()},
        "overall": overall,
    }


def write_info(path, info):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(info, f, indent=2)  # exactly as lerobot's eval_main writes it
    return path


SUITE = {
    ("libero_spatial", 0): [True, True, False, True],
    ("libero_spatial", 1): [False, False, True, False],
    ("libero_object", 0): [True, True, True, True],
    ("libero_object", 1): [True, False, True, True],
    ("libero_object", 2): [False, False, False, True],
}


def suite_file(path, tasks):
    """`lerobot_suite(tasks)` written to `path` (its folder created)."""
    return write_info(path, lerobot_suite(tasks))
