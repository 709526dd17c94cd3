"""Cost of the plug-in contract and ``--videos 0`` on the run path of `vla_eval.online.run`.

Videos are made after a run, by replaying the chosen episodes, so a run renders
nothing for them; what the run path gained with plug-in policies is per step: the
policy call guarded so that an exception becomes a one-line error, ``reset`` given
the batch positions, and a fuller check of the answer. This measures `online.run`
(``videos=0``) against the same `online.run` with its batch loop swapped for the loop
as it was before those additions (`loop_before`, kept here verbatim in substance),
on the same episodes, in one process, interleaved, medians of repeats. The policy is
the scripted expert, almost free, so the harness's share of the time is the largest
it can be. Target: <= 2%.

    python benchmarks/videos_overhead.py [--trials 25] [--repeats 7]

For the cost of writing videos themselves, the script also times ``videos=2``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def loop_before(env, policy, batch, config):
    """The batch loop without the plug-in additions: unguarded calls, ``reset(n)``."""
    from vla_eval.errors import UsageError
    from vla_eval.online.chunks import ChunkExecutor

    def as_chunk(actions, n, action_dim):
        a = np.asarray(actions, dtype=np.float64)
        if a.ndim == 2:
            a = a[:, None, :]
        if a.ndim != 3 or a.shape[0] != n or a.shape[2] != action_dim:
            raise UsageError(f"actions of shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise UsageError("the policy returned NaN or infinite actions")
        return a

    n = len(batch)
    obs = env.reset([w.seed for w in batch], [w.task for w in batch])
    instructions = obs.get("instruction")
    if hasattr(policy, "reset"):
        policy.reset(n)
    executor = ChunkExecutor(n, config)
    limit = np.array(
        [config.max_steps or getattr(w.task.spec, "max_steps", None) or 10**9 for w in batch]
    )
    done, success = np.zeros(n, bool), np.zeros(n, bool)
    returns, steps = np.zeros(n), np.zeros(n, np.int64)
    t = 0
    while not done.all():
        ask = executor.needs_query() & ~done
        if ask.any():
            rows = np.flatnonzero(ask)
            sub = {
                k: (v[rows] if hasattr(v, "shape") else [v[i] for i in rows])
                for k, v in obs.items()
            }
            sub["env_index"] = rows
            executor.push(rows, as_chunk(policy(sub), len(rows), env.action_dim), t)
        action = np.where(done[:, None], 0.0, executor.next(t))
        obs, reward, env_done, info = env.step(action)
        live = ~done
        returns[live] += np.asarray(reward, dtype=np.float64)[live]
        steps[live] += 1
        success |= np.asarray(info["success"], bool) & live
        finished = live & (np.asarray(env_done, bool) | (steps >= limit))
        for i in np.flatnonzero(finished):
            result = {"success": bool(success[i]), "steps": int(steps[i]), "return": returns[i]}
            if instructions is not None:
                result["instruction"] = str(instructions[i])
            yield batch[i], result
        done |= finished
        t += 1


def main() -> int:
    from vla_eval import online
    from vla_eval.envs.tabletop import ExpertPolicy, TabletopEnv
    from vla_eval.online import runner

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = TabletopEnv()
    policy = ExpertPolicy(env)
    config = online.OnlineConfig(trials=args.trials, batch_size=64, policy_name="bench")
    current = runner.rollout_batch
    times: dict[str, list[float]] = {"before": [], "now": []}
    for r in range(args.repeats):
        for label, loop in (("before", loop_before), ("now", current)):
            runner.rollout_batch = loop
            start = time.perf_counter()
            online.run(env, policy, config, tmp / f"{label}-{r}.jsonl", progress=False)
            times[label].append(time.perf_counter() - start)
    runner.rollout_batch = current
    before, now = statistics.median(times["before"]), statistics.median(times["now"])
    episodes = len(online.select_tasks(env, config)) * args.trials
    print(
        f"{episodes} episodes (scripted expert, batches of 64): run path before {before:.3f} s, "
        f"now with --videos 0 {now:.3f} s: ratio {now / before:.3f} "
        f"({100 * (now / before - 1):+.1f}%, target <= +2%)"
    )
    start = time.perf_counter()
    online.run(env, policy, config, tmp / "videos.jsonl", progress=False, videos=2)
    with_videos = time.perf_counter() - start
    print(
        f"the same run with --videos 2 (16 episodes replayed into MP4): {with_videos:.3f} s "
        f"({with_videos / now:.2f}x the run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
