"""`vla-eval online --stop-when`: the stopping rule and its baseline, checked before anything runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vla_eval.cli.common import load_quietly
from vla_eval.errors import UsageError

if TYPE_CHECKING:
    from vla_eval.envs.base import Task
    from vla_eval.stats.stopping import Stopper


def stopper_from_args(args: argparse.Namespace) -> Stopper | None:
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


def check_baseline_overlap(stopper: Stopper, tasks: Sequence[Task], trials: int) -> None:
    """A baseline must share at least one (task, split, seed) with the planned episodes."""
    if stopper.rule.kind != "decided":
        return
    planned = {(t.name, t.split) for t in tasks}
    if not any((k[0], k[1]) in planned and 0 <= k[2] < trials for k in stopper.baseline):
        raise UsageError(
            "--baseline holds no episode with the (task, split, seed) of this run; "
            "run the baseline on the same tasks, splits and seeds"
        )
