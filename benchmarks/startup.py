"""Start-up time of `vla-eval wilson` as a ratio to a bare `python -c pass`.

Target: <= 3x. Both are measured in this run, interleaved, as the median of
repeated process launches, so machine load affects both alike.

    python benchmarks/startup.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 3.0


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    bare = [sys.executable, "-c", "pass"]
    script = shutil.which("vla-eval", path=str(Path(sys.executable).parent))
    wilson_args = ["wilson", "--successes", "17", "--trials", "20"]
    if script:
        wilson = [script, *wilson_args]
    else:
        wilson = [sys.executable, "-m", "vla_eval.cli", *wilson_args]
    for cmd in (bare, wilson):  # warm the file cache
        _time(cmd)
    bare_t, wilson_t = [], []
    for _ in range(args.repeats):
        bare_t.append(_time(bare))
        wilson_t.append(_time(wilson))
    b, w = statistics.median(bare_t), statistics.median(wilson_t)
    ratio = w / b
    print(f"python -c pass          median {b * 1e3:7.1f} ms")
    print(f"vla-eval wilson ...     median {w * 1e3:7.1f} ms")
    verdict = "OK" if ratio <= TARGET else "OVER TARGET"
    print(f"ratio {ratio:.2f}x (target <= {TARGET:.0f}x): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
