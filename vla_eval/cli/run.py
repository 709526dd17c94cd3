"""`vla-eval run`: a protocol's experiment (train each variant, evaluate, compare).

`--dry-run` only reads the protocol and plans the runs: it must not import torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vla_eval.cli.common import output_dir, print_json

NAME = "run"
HELP = "run an experiment: train each variant, evaluate, compare against the baseline"
DESCRIPTION = (
    "Run a protocol's experiment: every variant is trained with the recipe (once per "
    "seed when the protocol lists seeds), "
    "scored offline and online (same seeds for every variant), and compared with the "
    "baseline (paired tests, Wilson and Newcombe intervals). Resumable."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("protocol", help="protocol TOML with an [experiment] section")
    p.add_argument("--out", help="output folder (default: runs/<protocol name>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--dry-run", action="store_true", help="list the runs; train nothing")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="shrink every run to seconds (checks the pipeline, answers nothing)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from vla_eval.experiment.plan import dry_run
    from vla_eval.protocol import load_protocol

    protocol = load_protocol(args.protocol)
    if args.dry_run:
        plan = dry_run(protocol, args.protocol, smoke=args.smoke)
        if args.json:
            print_json(plan)
        else:
            for spec in plan["runs"]:
                mark = " (baseline)" if spec["baseline"] else ""
                if "seed" in spec:
                    mark += f", seed {spec['seed']}"
                print(
                    f"{spec['variant']}{mark}: {spec['steps']} steps, {spec['trials']} trials "
                    f"per task and split; sets {spec['set'] or 'nothing'}"
                )
        return 0
    from vla_eval.experiment.output import format_markdown, write_experiment_html
    from vla_eval.experiment.run import run_experiment
    from vla_eval.locking import output_lock

    out = args.out or f"runs/{protocol.name}"
    output_dir(out)  # refuse an unusable --out before any work
    result = run_experiment(
        protocol,
        args.protocol,
        out,
        resume=args.resume,
        smoke=args.smoke,
        progress=not args.no_progress,
    )
    with output_lock(out, "experiment directory", directory=True):
        write_experiment_html(result, Path(out))
    if args.json:
        print_json(result)
    else:
        print(format_markdown(result))
        print(
            f"wrote {out}/report.html, experiment.md, experiment.json and "
            f"{', '.join(result['figures'])}"
        )
    return 0
