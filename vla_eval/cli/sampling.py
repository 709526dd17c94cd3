"""`vla-eval sampling`: temperature sampling probabilities and loss weights for a data mix.

Torch-free: it reads the temperature functions, never the trainer.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import counts_text, print_json, temperatures_text
from vla_eval.errors import UsageError

NAME = "sampling"
HELP = "task sampling probabilities p ~ n^(1/T) and loss weights for a data mix"
DESCRIPTION = (
    "Temperature sampling over tasks: p(task i) proportional to n_i^(1/T). "
    "Example: vla-eval sampling --counts pick=50000,place=30000,stack=2000,pour=500 "
    "--temperature 2"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--counts",
        required=True,
        type=counts_text,
        help="examples per task: task=count[,task=count...]",
    )
    p.add_argument(
        "--temperature",
        "-T",
        default="1",
        type=temperatures_text,
        help="T > 0 or 'inf' (uniform over tasks); a comma list tabulates several",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from vla_eval.stats import sampling

    counts = sampling.parse_counts(args.counts)
    temps = [sampling.parse_temperature(t) for t in str(args.temperature).split(",") if t.strip()]
    if not temps:
        raise UsageError("--temperature needs a value (a number > 0 or 'inf')")
    table = sampling.mixing_table(counts, temps)
    if args.json:
        from vla_eval.results import provenance

        print_json({"schema": "vla-eval/sampling/1", **table, "provenance": provenance()})
    else:
        print(sampling.format_mixing_table(table))
    return 0
