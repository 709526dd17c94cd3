"""Does `vla-eval report` scale: time linear and memory flat in the number of episodes?

Writes 100,000 and 1,000,000 episodes (20 tasks x 2 splits) to temporary JSON Lines
files and runs ``vla-eval report`` on each in a fresh subprocess, which reports its own
wall time and peak resident memory (``resource.getrusage``). A third run, on 40
episodes, measures the interpreter's and the imports' own memory, so the growth attributable to the
episodes is visible. Prints the times, the peaks and the 1M / 100k ratios (time: 10x
is linear; memory growth per episode should be tens of bytes, not hundreds).
Run: ``python benchmarks/report_scale.py [--small 100000] [--large 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from report_speed import write_file  # the same episodes as report_speed.py

_CHILD = (
    "import resource, sys, time, contextlib, io\n"
    "t0 = time.perf_counter()\n"
    "from vla_eval.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    status = main(sys.argv[1:])\n"
    "peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(status, time.perf_counter() - t0, peak_kb)\n"
)


def measure(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak MB) of one `vla-eval` command in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv], check=True, capture_output=True, text=True
    )
    status, seconds, peak_kb = out.stdout.split()
    if status != "0":
        raise SystemExit(f"vla-eval {' '.join(argv)} exited {status}: {out.stderr}")
    return float(seconds), float(peak_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.jsonl"
        write_file(tiny, 40)
        _, base_mb = measure(["report", str(tiny), "--json"])
        rows = {}
        for n in (args.small, args.large):
            path = Path(tmp) / f"episodes_{n}.jsonl"
            write_file(path, n)
            rows[n] = measure(["report", str(path), "--json"])
            path.unlink()
    print(f"interpreter and imports (report on 40 episodes): {base_mb:.0f} MB peak")
    for n, (seconds, mb) in rows.items():
        per_episode = (mb - base_mb) * 1024 * 1024 / n
        print(
            f"  {n:>9,} episodes: {seconds:6.2f} s, {mb:6.0f} MB peak "
            f"({per_episode:5.0f} bytes per episode above the interpreter)"
        )
    (ts, ms), (tl, ml) = rows[args.small], rows[args.large]
    scale = args.large / args.small
    print(
        json.dumps(
            {
                "episodes_ratio": scale,
                "time_ratio": round(tl / ts, 2),
                "peak_memory_ratio": round(ml / ms, 2),
                "growth_memory_ratio": round((ml - base_mb) / max(ms - base_mb, 1e-9), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
