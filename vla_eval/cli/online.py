"""`vla-eval online`: roll a policy out in a simulated world and report success rates.

The environment, the checkpoint policy (and torch) are imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from vla_eval.cli.common import load_quietly, output_file, print_json, split_list, whole_number
from vla_eval.errors import UsageError

if TYPE_CHECKING:
    from vla_eval.policies.factory import NamedPolicy

NAME = "online"
HELP = "roll a policy out in a simulated world and report success rates"
DESCRIPTION = (
    "Roll a checkpoint (or the environment's scripted expert: POLICY=expert) "
    "out over every task x split with seeds 0..N-1, append one episode record per "
    "finished episode, and print the success report. Crash-safe: --resume finishes an "
    "interrupted run exactly; --shard i/N splits the work."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("policy", metavar="CKPT", help="checkpoint file, or 'expert'")
    p.add_argument(
        "--env", default="tabletop", help="tabletop (default), metaworld, metaworld-ml10"
    )
    p.add_argument(
        "--trials", type=whole_number(1, 10**9), default=50, help="episodes per task and split"
    )
    p.add_argument("--splits", default="seen,unseen", help="comma-separated splits")
    p.add_argument("--tasks", help="comma-separated task names (default: all)")
    p.add_argument("--out", help="episodes file (default: CKPT with .episodes.jsonl)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run")
    p.add_argument("--shard", default="0/1", help="i/N: run every N-th batch, starting at i")
    p.add_argument("--max-steps", type=whole_number(1, 10**6), help="step limit per episode")
    p.add_argument("--chunk-mode", default="open-loop", help="open-loop or ensemble")
    p.add_argument(
        "--execute", type=whole_number(1, 10**4), help="actions executed per predicted chunk"
    )
    p.add_argument(
        "--batch-size", type=whole_number(1, 65_536), default=64, help="episodes stepped together"
    )
    p.add_argument("--record-actions", action="store_true", help="store executed actions")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _default_out(args: argparse.Namespace, policy: NamedPolicy) -> Path:
    """The episodes file: --out, or one named after the checkpoint or the expert's world."""
    if args.out:
        return output_file(args.out)
    if policy.path is None:
        return Path(f"expert-{args.env}.episodes.jsonl")
    return policy.path.with_suffix(".episodes.jsonl")


def run(args: argparse.Namespace) -> int:
    from vla_eval import online
    from vla_eval import report as rep
    from vla_eval.envs.factory import make_env
    from vla_eval.episodes import load_episodes
    from vla_eval.policies.factory import make_policy

    env = make_env(args.env)
    named = make_policy(args.policy, env, env_name=args.env)
    out = _default_out(args, named)
    config = online.OnlineConfig(
        trials=args.trials,
        splits=split_list(args.splits) or (),
        tasks=split_list(args.tasks),
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        chunk_mode=args.chunk_mode,
        execute=args.execute,
        record_actions=args.record_actions,
        policy_name=named.name,
    )
    limit = getattr(env, "max_seeds", None)
    if limit is not None and args.trials > limit:
        raise UsageError(
            f"{env.name} has {limit} distinct episodes per task; --trials {args.trials} is too many"
        )
    shard = online.parse_shard(args.shard)
    try:
        online.run(
            env,
            named.policy,
            config,
            out,
            policy_id=named.policy_id,
            resume=args.resume,
            shard=shard,
            progress=not args.no_progress,
        )
    finally:
        close = getattr(named.policy, "close", None)
        if close is not None:
            close()
    table = load_quietly(lambda: load_episodes([out]))
    report = rep.build_report(table, splits=config.splits)
    if args.json:
        from vla_eval.results import provenance

        print_json({**report, "episodes_file": str(out), "provenance": provenance()})
    else:
        print(rep.format_report(report))
        print(f"\nepisodes: {out}")
    return 0
