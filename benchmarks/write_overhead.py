"""Cost of crash safety: the output lock, the atomic write (fsync + rename + folder fsync).

Measured in one run against baselines measured alongside: taking and releasing an
output lock; `write_json` (atomic, fsynced) against a plain ``write_text`` of the same
bytes; and `online.run` with the scripted expert (the cheapest policy, so the worst
case for relative overhead) with its lock against the same run with the lock replaced
by a no-op. Medians over interleaved repeats.

    python benchmarks/write_overhead.py [--trials 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn, n: int) -> float:
    """Median seconds of one call over `n` calls."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    from vla_eval import online
    from vla_eval.envs.tabletop import ExpertPolicy, TabletopEnv
    from vla_eval.locking import output_lock
    from vla_eval.online import runner
    from vla_eval.results import dumps, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())

    def lock() -> None:
        with output_lock(tmp / "run", directory=True):
            pass

    print(f"output lock, take and release: {1e6 * timed(lock, 200):.0f} us")
    result = {"schema": "bench", "values": list(range(200))}
    text = dumps(result) + "\n"
    atomic = timed(lambda: write_json(tmp / "a.json", result), 100)
    plain = timed(lambda: (tmp / "b.json").write_text(text), 100)
    print(f"write_json {1e3 * atomic:.2f} ms vs plain write_text {1e3 * plain:.2f} ms")

    env = TabletopEnv()
    config = online.OnlineConfig(trials=args.trials, batch_size=64, policy_name="bench")
    policy = ExpertPolicy(env)
    real_lock = runner.output_lock if hasattr(runner, "output_lock") else None
    locked, unlocked = [], []
    for r in range(args.repeats):
        for label, times in (("locked", locked), ("unlocked", unlocked)):
            if label == "unlocked":
                import vla_eval.locking as locking

                saved = locking.output_lock
                locking.output_lock = lambda *a, **k: contextlib.nullcontext()
            t = time.perf_counter()
            online.run(env, policy, config, tmp / f"{label}-{r}.jsonl", progress=False)
            times.append(time.perf_counter() - t)
            if label == "unlocked":
                locking.output_lock = saved
    assert real_lock is None  # the runner imports the lock lazily, so the patch above applies
    n = len(env.tasks) * args.trials
    lo, un = statistics.median(locked), statistics.median(unlocked)
    print(
        f"online.run, expert, {n} episodes: with lock {lo:.3f} s, without {un:.3f} s "
        f"(ratio {lo / un:.3f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
