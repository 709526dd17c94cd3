"""Episodes per second of the Ray backend against the local backend, at the same number of workers.

Both roll a TinyVLA checkpoint (trained here for a few steps from the smoke protocol)
out over every tabletop task x split. Local with W workers is what a user runs today:
W processes, each `online.run` on shard i/W with its own environment and model, built
before the clock starts. Ray with W workers is `run_ray(workers=W)` on a Ray instance
started beforehand (a cluster is usually already up), timed from the moment its actors
are ready (`RayRun.run_seconds`; their set-up, which imports torch and loads the model
once per run, is printed apart): W environment actors with the policy in its own actor
merging their requests (the default), and with the policy inside each environment
actor (``policy_in_env``: no call between processes per step). Printed: episodes/s,
Ray's overhead in % and in ms per episode (goal <= 15% at 2 workers). Medians over
interleaved repeats; timings on a shared machine are noisy.

    OMP_NUM_THREADS=1 python benchmarks/ray_overhead.py [--trials 8] [--workers 1 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

_LOCAL: dict = {}


def _local_init(ckpt: str) -> None:
    """A local worker process: its environment and model, built once before timing."""
    import torch

    from vla_eval.envs.factory import make_env
    from vla_eval.policies.factory import make_policy

    torch.set_num_threads(1)
    env = make_env("tabletop")
    _LOCAL.update(env=env, named=make_policy(ckpt, env, env_name="tabletop"))


def _local_shard(job: tuple) -> int:
    from vla_eval import online

    config, out, shard = job
    named = _LOCAL["named"]
    online.run(_LOCAL["env"], named.policy, config, out, policy_id=named.policy_id,
               shard=shard, progress=False)  # fmt: skip
    return sum(1 for _ in open(out, encoding="utf-8"))


def time_local(
    pool: mp.pool.Pool, workers: int, config, tmp: Path, tag: str = "local"
) -> tuple[float, int]:
    """Seconds and episodes for `workers` local processes, one shard each."""
    tag = f"{tag}-{workers}-{config.trials}"
    jobs = [(config, tmp / f"{tag}-{i}.jsonl", (i, workers)) for i in range(workers)]
    start = time.perf_counter()
    episodes = sum(pool.map(_local_shard, jobs, chunksize=1))
    return time.perf_counter() - start, episodes


def time_ray(workers: int, ckpt: str, config, tmp: Path, in_env: bool) -> tuple[float, float]:
    """Seconds running (actors ready to last episode) and seconds setting up."""
    from vla_eval.online.distributed import run_ray

    out = tmp / f"ray-{workers}-{in_env}-{time.perf_counter_ns()}.jsonl"
    result = run_ray(
        ("tabletop", {}), (ckpt, {}), config, out, workers=workers, progress=False,
        policy_in_env=in_env,
    )  # fmt: skip
    return result.run_seconds, result.setup_seconds


def main() -> int:
    import ray

    from vla_eval import online
    from vla_eval.envs.factory import make_env
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=(1, 2))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    smoke = Path(__file__).parents[1] / "protocols" / "smoke.toml"
    ckpt = str(train(load_protocol(smoke).train, out_dir=tmp / "run", progress=False).checkpoint)
    ray.init(num_cpus=max(2, *args.workers), include_dashboard=False, logging_level="ERROR")
    config = online.OnlineConfig(trials=args.trials, batch_size=16, policy_name="bench")
    episodes = online.plan(make_env("tabletop"), config).episodes
    ctx = mp.get_context("spawn")
    print(f"TinyVLA on tabletop: {episodes} episodes in batches of 16, medians of {args.repeats}")
    for workers in args.workers:
        local, actor, in_env, setup = [], [], [], []
        with ctx.Pool(workers, initializer=_local_init, initargs=(ckpt,)) as pool:
            time_local(pool, workers, config, tmp, "warm-up")  # first calls, page cache
            for r in range(args.repeats):
                local.append(time_local(pool, workers, config, tmp, f"local{r}")[0])
                run, up = time_ray(workers, ckpt, config, tmp, in_env=False)
                actor.append(run)
                setup.append(up)
                in_env.append(time_ray(workers, ckpt, config, tmp, in_env=True)[0])
        base = statistics.median(local)
        print(f"workers={workers}: local {episodes / base:6.1f} ep/s")
        for label, times in (("policy actor", actor), ("policy in env actor", in_env)):
            t = statistics.median(times)
            print(
                f"    ray, {label:19s} {episodes / t:6.1f} ep/s, overhead {100 * (t / base - 1):+6.1f}%"
                f" = {1000 * (t - base) / episodes:+6.2f} ms/episode (goal <= 15% at 2 workers)"
            )
        print(f"    ray set-up per run (not in the above): {statistics.median(setup):.2f} s")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
