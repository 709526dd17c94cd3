"""`vla-eval train`: train the reference TinyVLA with a protocol's recipe.

The trainer (and torch) is imported only when the command runs.
"""

from __future__ import annotations

import argparse

from vla_eval.cli.common import output_dir

NAME = "train"
HELP = "train the reference TinyVLA with a protocol's recipe"
DESCRIPTION = (
    "Train TinyVLA on the built-in world with the recipe of a protocol file "
    "(its [train] section). Writes metrics.jsonl, checkpoints/, findings.json and run.json."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("protocol", help="protocol TOML file, e.g. protocols/quickstart.toml")
    p.add_argument("--out", help="run directory (default: runs/<protocol name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    protocol = load_protocol(args.protocol)
    out = args.out or f"runs/{protocol.name}"
    output_dir(out)  # refuse an unusable --out before any work
    result = train(protocol.train, out_dir=out, resume=args.resume, progress=not args.no_progress)
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    if result.already_finished:
        print(f"{out} already holds the finished run of {protocol.name}; nothing changed")
    else:
        print(f"trained {protocol.name}: {result.steps} steps in {result.seconds:.0f} s")
    print(f"  final loss {loss}; checkpoint {result.checkpoint}")
    for split, m in sorted(result.heldout.get("heldout", {}).items()):
        print(
            f"  held-out {split}: action loss {m['loss']:.3f}, bin accuracy "
            f"{100 * m['accuracy']:.1f}%, L1 {m['l1']:.3f}"
        )
    print(f"  {len(result.findings)} Diagnose finding(s); see {out}/findings.json")
    return 0
