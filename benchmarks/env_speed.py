"""Environment steps per second of the tabletop world, batched against one-at-a-time.

Every step includes rendering the 64x64 observations. The baseline, measured in the
same run, steps the same number of environments one at a time (N=1 each) in a
Python loop; the ratio is what vectorising buys. Actions come from the scripted
expert, so the measured mix of grasps, carries and pours is a realistic one.

Usage: python benchmarks/env_speed.py [--num-envs 64] [--steps 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vla_eval.envs.tabletop import ScriptedExpert, TabletopEnv


def _run(env: TabletopEnv, expert: ScriptedExpert, seeds: np.ndarray, steps: int) -> float:
    """Step until ``steps`` live env-steps have been taken; return env-steps per second."""
    tasks = [env.tasks[int(s) % len(env.tasks)] for s in seeds]
    taken = 0
    start = time.perf_counter()
    while taken < steps:
        env.reset(seeds, tasks)
        expert.reset(env, seeds)
        done = np.zeros(seeds.size, bool)
        while not done.all() and taken < steps:
            taken += int((~done).sum())  # finished envs in the batch do not count
            _, _, done, _ = env.step(expert.act(env))
        seeds = seeds + seeds.size
    return taken / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400, help="batched steps to time")
    args = parser.parse_args()
    n = args.num_envs
    total = n * args.steps

    batched_env, batched_expert = TabletopEnv(), ScriptedExpert()
    _run(batched_env, batched_expert, np.arange(n), 4 * n)  # warm up caches and sprites
    batched = _run(batched_env, batched_expert, np.arange(n), total)

    # Baseline: the same N environments, each stepped on its own.
    singles = [(TabletopEnv(), ScriptedExpert()) for _ in range(n)]
    per_env = max(1, total // (8 * n))  # a shorter run: the baseline is slow
    start = time.perf_counter()
    for i, (env, expert) in enumerate(singles):
        _run(env, expert, np.array([i]), per_env)
    looped = n * per_env / (time.perf_counter() - start)

    print(
        f"tabletop {TabletopEnv.version}, 64x64 RGB rendering every step, scripted-expert actions"
    )
    print(f"  batched  N={n:<4d} {batched:10,.0f} env-steps/s")
    print(f"  baseline N=1 loop {looped:10,.0f} env-steps/s")
    print(f"  speed-up          {batched / looped:10.1f}x   (target: >= 5,000 env-steps/s batched)")


if __name__ == "__main__":
    main()
