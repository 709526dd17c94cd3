"""`vla-eval online`: roll a policy out in a simulated world and report success rates.

The environment, the checkpoint policy (and torch) are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vla_eval.cli.common import load_quietly, output_file, print_json, split_list, whole_number
from vla_eval.cli.online_stopping import check_baseline_overlap, stopper_from_args
from vla_eval.cli.tracking import add_tracker_arguments, log_success_report, open_tracker
from vla_eval.errors import UsageError

if TYPE_CHECKING:
    from vla_eval.policies.factory import NamedPolicy
    from vla_eval.stats.stopping import Stopper

NAME = "online"
HELP = "roll a policy out in a simulated world and report success rates"
DESCRIPTION = (
    "Roll a policy out over every task x split with seeds 0..N-1, append one episode "
    "record per finished episode, and print the success report. The policy is a "
    "checkpoint file, 'expert' (the environment's scripted expert), or --policy SPEC: a "
    "registered name (entry points vla_eval.policies) or package.module:factory, with "
    "--policy-arg KEY=VALUE for its factory (docs/policies.md). Crash-safe: --resume "
    "finishes an interrupted run exactly; --shard i/N splits the work; --stop-when stops "
    "early with the error rate kept (docs/statistics.md); --videos K replays K recorded "
    "episodes per task and split into MP4 files."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    _policy_arguments(p)
    _env_arguments(p)
    _run_arguments(p)
    _rollout_arguments(p)
    add_tracker_arguments(p)


def _policy_arguments(p: argparse.ArgumentParser) -> None:
    """What to roll out."""
    g = p.add_argument_group("policy")
    g.add_argument(
        "policy", metavar="CKPT", nargs="?", help="checkpoint file, or 'expert' (or use --policy)"
    )
    g.add_argument(
        "--policy",
        dest="policy_spec",
        metavar="SPEC",
        help="registered policy name (tinyvla, expert, plug-ins) or package.module:factory",
    )
    g.add_argument(
        "--policy-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument for the policy factory (repeatable; VALUE read as JSON when it parses)",
    )


def _env_arguments(p: argparse.ArgumentParser) -> None:
    """Where to roll it out."""
    g = p.add_argument_group("environment")
    g.add_argument(
        "--env",
        default="tabletop",
        help="tabletop (default), metaworld, metaworld-ml10, gym:[MODULE:]ENV_ID or an env file",
    )
    g.add_argument(
        "--env-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="argument for the environment (repeatable; VALUE read as JSON when it parses)",
    )
    g.add_argument(
        "--success-key", metavar="KEY", help="the info key that says success (Gymnasium)"
    )
    g.add_argument(
        "--workers",
        type=whole_number(1, 1024),
        metavar="N",
        help="subprocess workers of a Gymnasium environment, or with --backend ray the "
        "environment actors (default 1)",
    )
    g.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local (this process) or ray (environment actors on a Ray cluster; docs/scale.md)",
    )
    g.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster to join (--backend ray)")
    g.add_argument(
        "--policy-gpus",
        type=float,
        default=0.0,
        metavar="G",
        help="GPUs for the policy actor (--backend ray; fractions allowed)",
    )


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """Which episodes, and where they go."""
    g = p.add_argument_group("episodes")
    g.add_argument(
        "--trials", type=whole_number(1, 10**9), default=50, help="episodes per task and split"
    )
    g.add_argument(
        "--splits", help="comma-separated splits (default: every split of the environment)"
    )
    g.add_argument("--tasks", help="comma-separated task names (default: all)")
    g.add_argument("--out", help="episodes file (default: CKPT or POLICY-ENV with .episodes.jsonl)")
    g.add_argument("--resume", action="store_true", help="finish an interrupted run")
    g.add_argument(
        "--shard",
        default="0/1",
        help="i/N: run every N-th batch, starting at i; auto: from Slurm array or torchrun",
    )
    g.add_argument("--max-steps", type=whole_number(1, 10**6), help="step limit per episode")
    g.add_argument("--chunk-mode", default="open-loop", help="open-loop or ensemble")
    g.add_argument(
        "--execute", type=whole_number(1, 10**4), help="actions executed per predicted chunk"
    )


def _rollout_arguments(p: argparse.ArgumentParser) -> None:
    """How episodes are stepped, recorded, stopped and shown."""
    g = p.add_argument_group("rollout and output")
    g.add_argument(
        "--batch-size",
        type=whole_number(1, 65_536),
        help="episodes stepped together (default: the environment's preference, else 64)",
    )
    g.add_argument("--record-actions", action="store_true", help="store executed actions")
    g.add_argument(
        "--videos",
        type=whole_number(0, 10_000),
        default=0,
        metavar="K",
        help="replay up to K recorded episodes per task and split (successes and failures) "
        "into videos beside the episodes file",
    )
    g.add_argument(
        "--stop-when",
        metavar="RULE",
        help="stop as soon as RULE holds, anytime-valid: 'half-width<=H' or 'decided'",
    )
    g.add_argument(
        "--baseline", metavar="BASE.jsonl", help="episodes to compare with (--stop-when decided)"
    )
    g.add_argument(
        "--html",
        action="store_true",
        help="also write EPISODES.report.html: one self-contained page with the tables, the "
        "forest plot, the videos and the provenance",
    )
    g.add_argument("--json", action="store_true", help="print the report as one JSON object")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_assignments(items: Sequence[str], option: str) -> dict[str, Any]:
    """``KEY=VALUE`` options as a dict; VALUE is a JSON literal when it parses, else text.

    >>> parse_assignments(["steps=3", "name=pusht", "flags=[1, 2]", "on=true"], "--env-arg")
    {'steps': 3, 'name': 'pusht', 'flags': [1, 2], 'on': True}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key.isidentifier():
            raise UsageError(f"{option} expects KEY=VALUE with KEY a Python name, got {item!r}")
        if key in out:
            raise UsageError(f"{option} {key} is given twice")
        out[key] = _literal(text)
    return out


def _literal(text: str) -> Any:
    """A JSON literal (``3``, ``true``, ``[1,2]``, ``"x"``) or, failing that, the text itself."""

    def refuse(name: str) -> Any:
        raise ValueError(name)  # NaN and Infinity stay text

    try:
        return json.loads(text, parse_constant=refuse)
    except ValueError:
        return text


def _policy_spec(args: argparse.Namespace) -> str:
    """The one policy named by CKPT or --policy."""
    if args.policy is not None and args.policy_spec is not None:
        raise UsageError(f"name the policy once: CKPT ({args.policy}) or --policy SPEC, not both")
    spec = args.policy if args.policy is not None else args.policy_spec
    if spec is None:
        raise UsageError("name a policy: a checkpoint file, 'expert', or --policy SPEC")
    return spec


def _importable_from_here(spec: str) -> None:
    """Let ``--policy my_module:make`` find ``my_module.py`` in the current folder.

    ``python -m`` puts the current folder on the import path and the ``vla-eval`` script
    does not; it is added last, so it never shadows an installed module.
    """
    if ":" in spec and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


# make_env's own keywords, and the options that set them.
_OWN_OPTIONS = {
    "workers": "--workers",
    "success_key": "--success-key",
    "max_steps": "--max-steps",
    "render": "--videos (it renders what the videos need)",
}


def _env_options(args: argparse.Namespace) -> dict[str, Any]:
    """What goes to `make_env`: --env-arg, and --workers/--success-key when given.

    A Gymnasium environment (``gym:...`` or an environment file) also gets --max-steps.
    """
    options = parse_assignments(args.env_arg, "--env-arg")
    for key, option in _OWN_OPTIONS.items():
        if key in options:
            raise UsageError(f"--env-arg {key}=...: give it as {option}")
    if args.workers is not None:
        options["workers"] = args.workers
    if args.success_key is not None:
        options["success_key"] = args.success_key
    gym = args.env.startswith("gym:") or args.env.endswith(".toml")
    if gym and args.max_steps is not None:
        options["max_steps"] = args.max_steps
    return options


def _default_out(args: argparse.Namespace, policy: NamedPolicy) -> Path:
    """The episodes file: --out, the checkpoint's name, or ``POLICY-ENV.episodes.jsonl``."""
    if args.out:
        return output_file(args.out)
    if policy.path is not None:
        return policy.path.with_suffix(".episodes.jsonl")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{policy.name}-{args.env}").strip("._") or "policy"
    return Path(f"{stem}.episodes.jsonl")


def run(args: argparse.Namespace) -> int:
    from vla_eval import online
    from vla_eval.envs.factory import make_env
    from vla_eval.policies.factory import make_policy

    spec = _policy_spec(args)
    _importable_from_here(spec)
    policy_args = parse_assignments(args.policy_arg, "--policy-arg")
    stopper = stopper_from_args(args)
    if stopper is not None and args.shard != "0/1":
        raise UsageError("--stop-when needs the whole run; it cannot be used with --shard")
    shard = online.parse_shard(args.shard)
    env_options = _backend_options(args, stopper)
    env = make_env(args.env, **env_options)
    try:
        named = make_policy(spec, env, env_name=args.env, **policy_args)
        try:
            out = _default_out(args, named)
            config = _config(args, env, named.name)
            if stopper is not None:
                check_baseline_overlap(stopper, online.select_tasks(env, config), config.trials)
                stopper.names = (named.name, stopper.names[1])
            idle = not online.shard_batches(online.plan(env, config), shard)
            tracker = open_tracker(
                args,
                out.parent,
                {"command": "online", "name": named.name, "env": args.env, "trials": args.trials},
            )
            if args.backend == "ray":
                _run_on_ray(args, (spec, policy_args), env_options, config, out, named)
            else:
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
                    videos=args.videos,
                )
        finally:
            _close(named.policy)
    finally:
        _close(env)
    if idle:
        if tracker is not None:
            tracker.close()
        i, n = shard
        print(
            f"shard {i}/{n} has no episodes to run (the plan has fewer than {n} batches); "
            f"its manifest says so: {out}.shard.json"
        )
        return 0
    _print(args, config, out, stopper, tracker)
    return 0


def _backend_options(args: argparse.Namespace, stopper: Stopper | None) -> dict[str, Any]:
    """The environment's options, checked against the backend that will run it."""
    if args.backend == "local" and (args.ray_address or args.policy_gpus):
        raise UsageError("--ray-address and --policy-gpus need --backend ray")
    if not 0 <= args.policy_gpus <= 1024:
        raise UsageError(f"--policy-gpus must be between 0 and 1024, got {args.policy_gpus}")
    options = _env_options(args)
    if args.backend == "ray":
        if stopper is not None or args.shard != "0/1" or args.videos:
            raise UsageError(
                "--backend ray runs the whole run: not with --stop-when, --shard or --videos"
            )
        options.pop("workers", None)  # with --backend ray, --workers counts Ray's env actors
    return options


def _run_on_ray(
    args: argparse.Namespace,
    policy_spec: tuple[str, dict[str, Any]],
    env_options: dict[str, Any],
    config: Any,
    out: Path,
    named: Any,
) -> None:
    """The run on Ray: environment actors and a policy actor build their own copies."""
    from vla_eval.online.distributed import run_ray

    run_ray(
        (args.env, env_options),
        policy_spec,
        config,
        out,
        workers=args.workers or 1,
        address=args.ray_address,
        policy_gpus=args.policy_gpus,
        resume=args.resume,
        progress=not args.no_progress,
        policy_id=named.policy_id,
    )


def _config(args: argparse.Namespace, env: Any, name: str) -> Any:
    """The run's `OnlineConfig`, with the environment's batch size when none is given."""
    from vla_eval import online

    batch_size = args.batch_size or getattr(env, "preferred_batch_size", None) or 64
    config = online.OnlineConfig(
        trials=args.trials,
        splits=split_list(args.splits) or _env_splits(env),
        tasks=split_list(args.tasks),
        max_steps=args.max_steps,
        batch_size=int(batch_size),
        chunk_mode=args.chunk_mode,
        execute=args.execute,
        record_actions=args.record_actions,
        policy_name=name,
    )
    limit = getattr(env, "max_seeds", None)
    if limit is not None and args.trials > limit:
        raise UsageError(
            f"{env.name} has {limit} distinct episodes per task; --trials {args.trials} is too many"
        )
    return config


def _env_splits(env: Any) -> tuple[str, ...]:
    """Every split the environment has: seen and unseen first, then the others by name."""
    have = {t.split for t in env.tasks}
    first = [s for s in ("seen", "unseen") if s in have]
    return (*first, *sorted(have - set(first)))


def _close(thing: Any) -> None:
    """Call ``close()`` when the policy or environment has one."""
    close = getattr(thing, "close", None)
    if callable(close):
        close()


def _print(
    args: argparse.Namespace, config: Any, out: Path, stopper: Stopper | None, tracker: Any
) -> None:
    """The success report (and stopping decision, videos) as text or one JSON object, and
    to the tracker when there is one."""
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes

    table = load_quietly(lambda: load_episodes([out]))
    # A shard holds some batches only: its report covers the splits it has.
    report = rep.build_report(table, splits=config.splits if args.shard == "0/1" else None)
    videos = _videos(out) if args.videos else None
    if tracker is not None:
        for v in (videos or {}).get("files", []):
            tracker.log_video(Path(videos["folder"]) / v["file"], f"rollout/{v['file']}")
    log_success_report(tracker, report)
    page = _write_html(out, report, videos) if args.html else None
    if args.json:
        from vla_eval.results import provenance

        extra: dict[str, Any] = (
            {} if stopper is None else {"stopping": stopper.decision().to_dict()}
        )
        if videos is not None:
            extra["videos"] = videos
        if page is not None:
            extra["report_page"] = str(page)
        print_json({**report, **extra, "episodes_file": str(out), "provenance": provenance()})
        return
    print(rep.format_report(report))
    if stopper is not None:
        print(f"\n{stopper.decision().describe()}")
    if videos is not None:
        print(
            f"\nvideos: {videos['folder']} ({len(videos['files'])} files, index {videos['index']})"
        )
        for v in videos["files"]:
            note = "" if v["matches"] else f" (replay: {v['replayed']})"
            print(f"  {v['file']}{note}")
    print(f"\nepisodes: {out}")
    if page is not None:
        print(f"report page: {page}")


def _write_html(out: Path, report: dict[str, Any], videos: dict[str, Any] | None) -> Path:
    """EPISODES.report.html (and its forest plot, EPISODES.forest.png), under the file's lock."""
    from vla_eval import report as rep
    from vla_eval.locking import output_lock
    from vla_eval.report.html import write_report_html
    from vla_eval.results import provenance

    page = out.with_name(f"{out.stem}.report.html")
    figure = out.with_name(f"{out.stem}.forest.png")
    files = [Path(videos["folder"]) / v["file"] for v in videos["files"]] if videos else []
    with output_lock(out, "episodes file"):
        rep.plot_report(report, figure)
        full = {**report, "provenance": provenance()}
        return write_report_html(page, full, figures=[figure], videos=files)


def _videos(out: Path) -> dict[str, Any]:
    """The videos the run wrote, from their index."""
    from vla_eval.online.videos import INDEX_NAME, videos_dir

    folder = videos_dir(out)
    index = json.loads((folder / INDEX_NAME).read_text(encoding="utf-8"))
    return {"folder": str(folder), "index": str(folder / INDEX_NAME), "files": index["videos"]}
