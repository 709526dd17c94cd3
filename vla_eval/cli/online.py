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
    from collections.abc import Sequence

    from vla_eval.envs.base import Task
    from vla_eval.policies.factory import NamedPolicy
    from vla_eval.stats.stopping import Stopper

NAME = "online"
HELP = "roll a policy out in a simulated world and report success rates"
DESCRIPTION = (
    "Roll a checkpoint (or the environment's scripted expert: POLICY=expert) "
    "out over every task x split with seeds 0..N-1, append one episode record per "
    "finished episode, and print the success report. Crash-safe: --resume finishes an "
    "interrupted run exactly; --shard i/N splits the work; --stop-when stops early "
    "with the error rate kept (docs/statistics.md)."
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
    p.add_argument(
        "--stop-when",
        metavar="RULE",
        help="stop as soon as RULE holds, anytime-valid: 'half-width<=H' or 'decided'",
    )
    p.add_argument(
        "--baseline", metavar="BASE.jsonl", help="episodes to compare with (--stop-when decided)"
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _default_out(args: argparse.Namespace, policy: NamedPolicy) -> Path:
    """The episodes file: --out, or one named after the checkpoint or the expert's world."""
    if args.out:
        return output_file(args.out)
    if policy.path is None:
        return Path(f"expert-{args.env}.episodes.jsonl")
    return policy.path.with_suffix(".episodes.jsonl")


def _stopper(args: argparse.Namespace) -> Stopper | None:
    """The stopping rule of --stop-when/--baseline, checked before anything runs."""
    from vla_eval.stats.stopping import Stopper, parse_rule

    if args.stop_when is None:
        if args.baseline is not None:
            raise UsageError("--baseline is used only with --stop-when decided")
        return None
    rule = parse_rule(args.stop_when)
    if rule.kind != "decided":
        if args.baseline is not None:
            raise UsageError("--baseline is used only with --stop-when decided")
        return Stopper(rule)
    if args.baseline is None:
        raise UsageError("--stop-when decided needs --baseline BASE.jsonl")
    baseline, name = _read_baseline(args.baseline)
    return Stopper(rule, baseline=baseline, baseline_name=name)


def _read_baseline(path: str) -> tuple[dict[tuple[str, str, int], bool], str]:
    """(task, split, seed) -> success of a baseline episodes file, and its policy's name."""
    from vla_eval.episodes import read_episodes

    if not Path(path).is_file():
        raise UsageError(f"--baseline {path}: no such episode file")
    try:
        episodes = load_quietly(lambda: read_episodes([path]))
    except OSError as exc:
        raise UsageError(f"--baseline {path}: cannot read ({exc.strerror or exc})") from None
    assert isinstance(episodes, list)
    policies = sorted({ep.policy or "" for ep in episodes})
    if not episodes:
        raise UsageError(f"--baseline {path}: holds no episodes")
    if len(policies) > 1:
        raise UsageError(f"--baseline {path}: holds several policies ({', '.join(policies)})")
    return {(ep.task, ep.split, ep.seed): ep.success for ep in episodes}, policies[0] or "baseline"


def _check_baseline_overlap(stopper: Stopper, tasks: Sequence[Task], trials: int) -> None:
    """A baseline must share at least one (task, split, seed) with the planned episodes."""
    if stopper.rule.kind != "decided":
        return
    planned = {(t.name, t.split) for t in tasks}
    if not any((k[0], k[1]) in planned and 0 <= k[2] < trials for k in stopper.baseline):
        raise UsageError(
            "--baseline holds no episode with the (task, split, seed) of this run; "
            "run the baseline on the same tasks, splits and seeds"
        )


def run(args: argparse.Namespace) -> int:
    from vla_eval import online
    from vla_eval import report as rep
    from vla_eval.envs.factory import make_env
    from vla_eval.episodes import load_episodes
    from vla_eval.policies.factory import make_policy

    stopper = _stopper(args)
    if stopper is not None and args.shard != "0/1":
        raise UsageError("--stop-when needs the whole run; it cannot be used with --shard")
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
    if stopper is not None:
        _check_baseline_overlap(stopper, online.select_tasks(env, config), config.trials)
        stopper.names = (named.name, stopper.names[1])
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
            stop=stopper,
        )
    finally:
        close = getattr(named.policy, "close", None)
        if close is not None:
            close()
    table = load_quietly(lambda: load_episodes([out]))
    report = rep.build_report(table, splits=config.splits)
    if args.json:
        from vla_eval.results import provenance

        stopping = {} if stopper is None else {"stopping": stopper.decision().to_dict()}
        print_json({**report, **stopping, "episodes_file": str(out), "provenance": provenance()})
    else:
        print(rep.format_report(report))
        if stopper is not None:
            print(f"\n{stopper.decision().describe()}")
        print(f"\nepisodes: {out}")
    return 0
