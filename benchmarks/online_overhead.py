"""Overhead of `vla_eval.online.run` over a bare environment + policy loop.

Both run the same episodes (every tabletop task x split, seeds 0..N-1, batches of
64) with the same policy; the harness adds chunk execution, per-episode records
flushed and fsynced to disk, provenance and a progress bar. Target: <= 10%.
Measured with a TinyVLA policy (the realistic case) and with the scripted expert
(an almost free policy, the worst case for relative overhead). Medians over
interleaved repeats.

    python benchmarks/online_overhead.py [--trials 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def bare_loop(env, policy, batches) -> None:
    for batch in batches:
        obs = env.reset([w.seed for w in batch], [w.task for w in batch])
        if hasattr(policy, "reset"):
            policy.reset(len(batch))
        done = np.zeros(len(batch), bool)
        while not done.all():
            rows = np.flatnonzero(~done)
            sub = {
                k: (v[rows] if hasattr(v, "shape") else [v[i] for i in rows])
                for k, v in obs.items()
            }
            sub["env_index"] = rows
            chunk = np.asarray(policy(sub), dtype=np.float64)
            action = np.zeros((len(batch), env.action_dim))
            action[rows] = chunk[:, 0] if chunk.ndim == 3 else chunk
            obs, _, d, _ = env.step(action)
            done |= d


def main() -> int:
    import torch

    from vla_eval import online
    from vla_eval.envs.tabletop import ExpertPolicy, TabletopEnv
    from vla_eval.policies.checkpoint import CheckpointPolicy
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    smoke = Path(__file__).parents[1] / "protocols" / "smoke.toml"
    ckpt = train(load_protocol(smoke).train, out_dir=tmp / "run", progress=False).checkpoint
    env = TabletopEnv()
    config = online.OnlineConfig(trials=args.trials, batch_size=64, execute=1, policy_name="bench")
    batches = online.plan(env, config)
    for label, policy in (
        ("TinyVLA", CheckpointPolicy(ckpt)),
        ("expert", ExpertPolicy(env)),
    ):
        bare, harness = [], []
        for r in range(args.repeats):
            t = time.perf_counter()
            bare_loop(env, policy, batches)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            online.run(env, policy, config, tmp / f"{label}-{r}.jsonl", progress=False)
            harness.append(time.perf_counter() - t)
        b, h = statistics.median(bare), statistics.median(harness)
        episodes = sum(len(x) for x in batches)
        print(
            f"{label:8s} {episodes} episodes: bare loop {b:.3f} s, online.run {h:.3f} s, "
            f"overhead {100 * (h / b - 1):+.1f}% (target <= 10%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
