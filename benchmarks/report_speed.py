"""How fast is `vla-eval report` on a large evaluation?

Writes 100,000 episodes (20 tasks x 2 splits x 2,500 seeds) to a temporary JSON Lines
file, then times, in this run:

* baseline: bare ``json.loads`` of every line (the least any reader must do);
* ``load_episodes``: reading with validation and duplicate checks;
* ``vla-eval report --json`` in-process (reading, grouping, intervals, bootstrap);
* ``vla-eval report`` as a fresh subprocess (adds interpreter and import start-up).

Prints each time and its ratio to the baseline. The target is under 2 s for the
subprocess. Run: ``python benchmarks/report_speed.py [--episodes N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_file(path: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tasks = [f"task{i:02d}" for i in range(20)]
    splits = ["seen", "unseen"]
    per_group = max(1, n // (len(tasks) * len(splits)))
    rates = rng.uniform(0.2, 0.9, size=(len(tasks), len(splits)))
    with open(path, "w", encoding="utf-8") as fh:
        for ti, task in enumerate(tasks):
            for si, split in enumerate(splits):
                wins = rng.random(per_group) < rates[ti, si]
                for seed_i, win in enumerate(wins.tolist()):
                    fh.write(
                        json.dumps(
                            {
                                "schema": "vla-eval/episode/1",
                                "policy": "ckpt-step-2000",
                                "task": task,
                                "split": split,
                                "seed": seed_i,
                                "success": win,
                                "steps": 40,
                                "return": float(win),
                            },
                            separators=(",", ":"),
                        )
                        + "\n"
                    )


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from vla_eval.cli import main as cli_main
    from vla_eval.episodes import load_episodes

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "episodes.jsonl"
        write_file(path, args.episodes)

        def baseline() -> None:
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    json.loads(line)

        def in_process() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                assert cli_main(["report", str(path), "--json"]) == 0

        cmd = [sys.executable, "-m", "vla_eval.cli", "report", str(path)]

        def fresh_process() -> None:
            subprocess.run(cmd, check=True, capture_output=True)

        rows = [
            ("baseline: json.loads per line", best_of(baseline, args.repeats)),
            ("load_episodes (validated)", best_of(lambda: load_episodes([path]), args.repeats)),
            ("vla-eval report, in-process", best_of(in_process, args.repeats)),
            ("vla-eval report, subprocess", best_of(fresh_process, args.repeats)),
        ]
    base = rows[0][1]
    print(f"{args.episodes:,} episodes, best of {args.repeats}")
    for name, seconds in rows:
        print(f"  {name:<32} {seconds:7.3f} s   {seconds / base:5.2f}x baseline")
    verdict = "ok" if rows[-1][1] < 2.0 else "SLOWER THAN TARGET"
    print(f"subprocess report under 2 s: {verdict}")


if __name__ == "__main__":
    main()
