"""`vla-eval train`: train the reference TinyVLA with a protocol's recipe.

The trainer (and torch) is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from vla_eval.cli.common import output_dir
from vla_eval.cli.tracking import add_tracker_arguments

NAME = "train"
HELP = "train the reference TinyVLA with a protocol's recipe"
DESCRIPTION = (
    "Train TinyVLA on the built-in world with the recipe of a protocol file "
    "(its [train] section). Writes metrics.jsonl, checkpoints/, findings.json and run.json; "
    "with --tracker (or [train.tracker] in the protocol) also logs the metrics, evaluations "
    "and Diagnose findings to TensorBoard, MLflow or W&B."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("protocol", help="protocol TOML file, e.g. protocols/quickstart.toml")
    p.add_argument("--out", help="run directory (default: runs/<protocol name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tracker_arguments(p)


def with_tracker(config: Any, args: argparse.Namespace) -> Any:
    """`config` (a `TrainConfig`) with the tracker the options name laid over the
    protocol's ``[train.tracker]``: ``--tracker`` replaces it (its URI belongs to the
    protocol's tracker, so it is dropped unless that is the same one); ``--tracker-uri``
    and ``--tracker-project`` replace those settings."""
    from dataclasses import replace

    from vla_eval.errors import UsageError

    current = config.tracker
    if args.tracker is None and args.tracker_uri is None and args.tracker_project is None:
        return config
    name = args.tracker or current.name
    if name == "none":
        raise UsageError(
            "--tracker-uri and --tracker-project need --tracker NAME (or [train.tracker] "
            "in the protocol)"
        )
    uri = current.uri if name == current.name else None
    tracker = replace(
        current,
        name=name,
        uri=args.tracker_uri if args.tracker_uri is not None else uri,
        project=args.tracker_project if args.tracker_project is not None else current.project,
    )
    return replace(config, tracker=tracker)


def run(args: argparse.Namespace) -> int:
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    protocol = load_protocol(args.protocol)
    out = args.out or f"runs/{protocol.name}"
    output_dir(out)  # refuse an unusable --out before any work
    config = with_tracker(protocol.train, args)
    result = train(config, out_dir=out, resume=args.resume, progress=not args.no_progress)
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
    if config.tracker.name != "none" and not result.already_finished:
        from vla_eval.trackers import view_hint

        hint = view_hint(config.tracker.name, out, config.tracker.uri)
        print(f"  logged to {config.tracker.name}; to see it: {hint}")
    return 0
