"""Does `vla-eval report` scale: time linear and memory flat in the number of episodes?

Writes 100,000 and 1,000,000 episodes (20 tasks x 2 splits) to temporary JSON Lines
files and, on each, in a fresh subprocess that reports its own wall time and peak
resident memory (``resource.getrusage``), runs two things:

* ``cli``: the ``vla-eval report --json`` command as it is wired;
* ``stream``: what a report needs, through the API: ``count_episodes`` (per-cell counts
  and a seed bitset, nothing per episode), ``build_report`` and ``format_report``.

A run on 40 episodes measures the interpreter's and the imports' own memory, so the
growth attributable to the episodes is visible. Prints the times, the peaks and the
1M / 100k ratios (time: 10x is linear; memory: flat is a growth of about zero bytes
per episode). Run: ``python benchmarks/report_scale.py [--small 100000] [--large 1000000]``.
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

_CLI = (
    "import resource, sys, time, contextlib, io\n"
    "t0 = time.perf_counter()\n"
    "from vla_eval.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    status = main(['report', sys.argv[1], '--json'])\n"
    "peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(status, time.perf_counter() - t0, peak_kb)\n"
)
_STREAM = (
    "import resource, sys, time\n"
    "t0 = time.perf_counter()\n"
    "from vla_eval.episodes import count_episodes\n"
    "from vla_eval.report import build_report, format_report\n"
    "text = format_report(build_report(count_episodes([sys.argv[1]])))\n"
    "peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(0, time.perf_counter() - t0, peak_kb)\n"
)
MODES = {"cli": _CLI, "stream": _STREAM}


def measure(mode: str, path: Path) -> tuple[float, float]:
    """(seconds, peak MB) of one report of `path` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", MODES[mode], str(path)], check=True, capture_output=True, text=True
    )
    status, seconds, peak_kb = out.stdout.split()
    if status != "0":
        raise SystemExit(f"report ({mode}) of {path} exited {status}: {out.stderr}")
    return float(seconds), float(peak_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--modes", default="cli,stream", help="comma list of cli, stream")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows: dict[str, dict[int, tuple[float, float]]] = {m: {} for m in modes}
    base: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.jsonl"
        write_file(tiny, 40)
        for mode in modes:
            base[mode] = measure(mode, tiny)[1]
        for n in (args.small, args.large):
            path = Path(tmp) / f"episodes_{n}.jsonl"
            write_file(path, n)
            for mode in modes:
                rows[mode][n] = measure(mode, path)
            path.unlink()
    summary = {"episodes_ratio": args.large / args.small}
    for mode in modes:
        print(f"{mode}: interpreter and imports (report on 40 episodes): {base[mode]:.0f} MB peak")
        for n, (seconds, mb) in rows[mode].items():
            per_episode = (mb - base[mode]) * 1024 * 1024 / n
            print(
                f"  {n:>9,} episodes: {seconds:6.2f} s, {mb:6.0f} MB peak "
                f"({per_episode:5.0f} bytes per episode above the interpreter)"
            )
        (ts, ms), (tl, ml) = rows[mode][args.small], rows[mode][args.large]
        summary[mode] = {
            "time_ratio": round(tl / ts, 2),
            "peak_memory_ratio": round(ml / ms, 2),
            "growth_mb_small": round(ms - base[mode], 1),
            "growth_mb_large": round(ml - base[mode], 1),
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
