"""`vla-eval quickstart`: the end-to-end demo on the built-in world.

Everything heavy (the trainer, torch, the evaluators) is imported only when it runs.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import output_dir

NAME = "quickstart"
HELP = "end-to-end demo: train a small policy, evaluate offline and online, diagnose"
DESCRIPTION = (
    "Train TinyVLA with the three-stage recipe on the built-in world "
    "(protocols/quickstart.toml), score it offline on held-out demonstrations and online "
    "in rollouts on both splits, run Diagnose, and write report.html (one page with "
    "everything), report.md, report.json and PNG figures. Rerunning resumes where it "
    "stopped. Minutes on a laptop CPU."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="quickstart", help="output folder (default: quickstart)")
    p.add_argument("--protocol", help="another protocol file instead of quickstart.toml")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from vla_eval.quickstart import run_quickstart

    output_dir(args.out)  # refuse an unusable --out before any work
    result = run_quickstart(args.out, args.protocol, progress=not args.no_progress)
    md = f"{args.out}/report.md"
    print(open(md, encoding="utf-8").read())
    print(
        f"wrote {args.out}/report.html (one page), {md}, {args.out}/report.json and "
        f"{', '.join(result['figures'])} "
        f"in {result['seconds']:.0f} s"
    )
    return 0
