"""The `vla-eval` command line.

argparse with one small `_add_<name>` (arguments) and `_run_<name>` (handler) pair per
subcommand. Handlers import their feature modules lazily so that `vla-eval wilson`
and `vla-eval report` never import torch. This is the one place that turns a
`UsageError` into a single line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vla_eval import __version__
from vla_eval.errors import UsageError

PROG = "vla-eval"


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors become one-line `UsageError`s (exit 2, no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _print_json(obj: object) -> None:
    from vla_eval.results import dumps

    sys.stdout.write(dumps(obj) + "\n")


# --- wilson -------------------------------------------------------------------


def _add_wilson(sub: argparse._SubParsersAction) -> None:
    from vla_eval.stats.intervals import METHODS

    p = sub.add_parser(
        "wilson",
        help="confidence interval for a success rate (k successes in n trials)",
        description="Confidence interval for a binomial success rate. "
        "Example: vla-eval wilson --successes 17 --trials 20",
    )
    p.add_argument("--successes", "-k", required=True, help="number of successful trials")
    p.add_argument("--trials", "-n", required=True, help="number of trials")
    p.add_argument("--confidence", "-c", default="0.95", help="confidence level in (0, 1)")
    p.add_argument("--method", "-m", default="wilson", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--all", action="store_true", help="print every method side by side")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_wilson)


def _run_wilson(args: argparse.Namespace) -> int:
    from vla_eval.stats import intervals

    k = intervals.parse_count(args.successes, "--successes")
    n = intervals.parse_count(args.trials, "--trials")
    confidence = intervals.parse_confidence(args.confidence)
    methods = intervals.METHODS if args.all else (intervals.check_method(args.method),)
    results = [intervals.binomial_interval(k, n, confidence, m) for m in methods]
    if args.json:
        from vla_eval.results import provenance

        body = {
            "schema": "vla-eval/wilson/1",
            "inputs": {"successes": k, "trials": n, "confidence": confidence},
            "intervals": [r.to_dict() for r in results],
            "provenance": provenance(),
        }
        _print_json(body)
    elif args.all:
        print(intervals.format_table(results))
    else:
        print(results[0].describe())
    return 0


# --- sampling -----------------------------------------------------------------


def _add_sampling(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sampling",
        help="task sampling probabilities p ~ n^(1/T) and loss weights for a data mix",
        description="Temperature sampling over tasks: p(task i) proportional to n_i^(1/T). "
        "Example: vla-eval sampling --counts pick=50000,place=30000,stack=2000,pour=500 "
        "--temperature 2",
    )
    p.add_argument("--counts", required=True, help="examples per task: task=count[,task=count...]")
    p.add_argument(
        "--temperature",
        "-T",
        default="1",
        help="T > 0 or 'inf' (uniform over tasks); a comma list tabulates several",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_sampling)


def _run_sampling(args: argparse.Namespace) -> int:
    from vla_eval.trainer import sampling

    counts = sampling.parse_counts(args.counts)
    temps = [sampling.parse_temperature(t) for t in str(args.temperature).split(",") if t.strip()]
    if not temps:
        raise UsageError("--temperature needs a value (a number > 0 or 'inf')")
    table = sampling.mixing_table(counts, temps)
    if args.json:
        from vla_eval.results import provenance

        _print_json({"schema": "vla-eval/sampling/1", **table, "provenance": provenance()})
    else:
        print(sampling.format_mixing_table(table))
    return 0


# --- report / compare / plan --------------------------------------------------


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {' '.join(message.split())}", file=sys.stderr)


def _load_quietly(load: Callable[[], object]) -> object:
    """Run a loader, turning its warnings (a truncated last line) into stderr lines."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load()
    for w in caught:
        _warn(str(w.message))
    return result


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="success rates per task and split with intervals, and the seen->unseen gap",
        description="Success report of one policy's episodes: per (task, split) Wilson "
        "intervals, per split the pooled rate and the mean of task rates (stratified "
        "bootstrap), and the seen->unseen gap (Newcombe). Reads vla-eval .jsonl, .csv "
        "(task,split,seed,success) and LeRobot eval_info.json. "
        "Example: vla-eval report runs/episodes.jsonl --out runs/report",
    )
    p.add_argument("episodes", nargs="+", metavar="EPISODES", help="episode files")
    p.add_argument("--by", default="task,split", help="group by these fields (task, split)")
    p.add_argument("--splits", help="comma list of splits that must have episodes")
    p.add_argument("--confidence", "-c", default="0.95", help="confidence level in (0, 1)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (recorded)")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap replicates")
    p.add_argument(
        "--default-split",
        default="default",
        help="split for files that have none (LeRobot eval_info.json)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="also write DIR/report.json and DIR/forest.png")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes
    from vla_eval.results import provenance, write_json
    from vla_eval.stats.intervals import parse_confidence

    by = rep.parse_by(args.by)
    confidence = parse_confidence(args.confidence)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    table = _load_quietly(lambda: load_episodes(args.episodes, split=args.default_split))
    result = rep.build_report(
        table, by, confidence, seed=args.seed, n_bootstrap=args.bootstrap, splits=splits
    )
    result["provenance"] = provenance(seeds=result["seeds"], packages=("numpy",))
    for w in result["warnings"]:
        _warn(w)
    if args.out:
        from pathlib import Path

        out = Path(args.out)
        json_path = write_json(out / "report.json", result)
        png_path = rep.plot_report(result, out / "forest.png")
        print(f"{PROG}: wrote {json_path} and {png_path}", file=sys.stderr)
    if args.json:
        _print_json(result)
    else:
        print(rep.format_report(result))
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="is one policy really better? differences, exact tests, Holm-adjusted ranking",
        description="Compare two or more policies' episode files: difference of success "
        "rates (Newcombe interval), Fisher and Boschloo exact tests, McNemar's exact test "
        "when the policies share (task, split, seed), per task too; three or more "
        "policies get Holm-adjusted p-values and a ranking. "
        "Example: vla-eval compare base.jsonl tuned.jsonl --paired",
    )
    p.add_argument("episodes", nargs="+", metavar="EPISODES", help="one episode file per policy")
    p.add_argument(
        "--paired",
        action="store_true",
        help="require matching (task, split, seed) episodes and use McNemar's test",
    )
    p.add_argument("--confidence", "-c", default="0.95", help="confidence level in (0, 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="also write DIR/compare.json")
    p.set_defaults(func=_run_compare)


def _run_compare(args: argparse.Namespace) -> int:
    from vla_eval import report as rep
    from vla_eval.results import provenance, write_json
    from vla_eval.stats.intervals import parse_confidence

    confidence = parse_confidence(args.confidence)
    policies = _load_quietly(lambda: rep.load_policies(args.episodes))
    result = rep.build_comparison(policies, confidence, paired=True if args.paired else None)
    result["provenance"] = provenance(packages=("numpy", "scipy", "statsmodels"))
    for note in result["notes"]:
        _warn(note)
    if args.out:
        from pathlib import Path

        path = write_json(Path(args.out) / "compare.json", result)
        print(f"{PROG}: wrote {path}", file=sys.stderr)
    if args.json:
        _print_json(result)
    else:
        print(rep.format_comparison(result))
    return 0


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="how many trials: to detect p0 -> p1, for a CI half-width, or what n can detect",
        description="Plan an evaluation. Examples: vla-eval plan --p0 0.5 --p1 0.7 "
        "(trials per policy); vla-eval plan --half-width 0.1 --p 0.5 (trials for a Wilson "
        "half-width); vla-eval plan --trials 50 --p0 0.5 (minimum detectable difference)",
    )
    p.add_argument("--p0", type=float, help="baseline success rate")
    p.add_argument("--p1", type=float, help="success rate to detect")
    p.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided level (default 0.05)")
    p.add_argument("--half-width", type=float, help="target Wilson interval half-width")
    p.add_argument("--p", type=float, default=0.5, help="expected rate for --half-width")
    p.add_argument("--confidence", "-c", default="0.95", help="level for --half-width")
    p.add_argument("--trials", type=int, help="trials per policy: minimum detectable difference")
    p.add_argument("--method", default="pooled", help="pooled (default) or arcsine")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_plan)


def _run_plan(args: argparse.Namespace) -> int:
    from vla_eval.stats import planning
    from vla_eval.stats.intervals import parse_confidence

    modes = [
        args.p1 is not None,
        args.half_width is not None,
        args.trials is not None,
    ]
    if sum(modes) != 1:
        raise UsageError(
            "plan needs exactly one of: --p0 P0 --p1 P1 (trials to detect a change), "
            "--half-width H (trials for an interval width), --trials N (detectable change)"
        )
    if args.p1 is not None:
        if args.p0 is None:
            raise UsageError("--p1 needs --p0 (the baseline rate)")
        n = planning.trials_to_detect(args.p0, args.p1, args.alpha, args.power, args.method)
        body = {
            "question": "trials per policy to detect p0 -> p1",
            "p0": args.p0,
            "p1": args.p1,
            "alpha": args.alpha,
            "power": args.power,
            "method": args.method,
            "trials_per_policy": n,
        }
        text = (
            f"{n} trials per policy ({2 * n} in all) detect {100 * args.p0:.1f}% -> "
            f"{100 * args.p1:.1f}% with {100 * args.power:g}% power at two-sided "
            f"alpha = {args.alpha:g} ({args.method} normal approximation)."
        )
    elif args.half_width is not None:
        confidence = parse_confidence(args.confidence)
        n = planning.trials_for_half_width(args.half_width, args.p, confidence)
        body = {
            "question": "trials for a Wilson interval half-width",
            "half_width": args.half_width,
            "rate": args.p,
            "confidence": confidence,
            "trials": n,
            "achieved_half_width": planning.wilson_half_width(args.p, n, confidence),
        }
        text = (
            f"{n} trials give a {100 * confidence:g}% Wilson interval of half-width at most "
            f"{100 * args.half_width:.1f} points when the rate is {100 * args.p:.1f}% "
            f"(achieved: {100 * body['achieved_half_width']:.2f})."
        )
    else:
        p0 = 0.5 if args.p0 is None else args.p0
        mdd = planning.minimum_detectable_difference(
            args.trials, p0, args.alpha, args.power, args.method
        )
        body = {"question": "minimum detectable difference", **mdd.to_dict()}

        def change(x: float | None, sign: str) -> str:
            return "none possible" if x is None else f"{sign}{100 * x:.1f} points"

        text = (
            f"With {args.trials} trials per policy and a baseline of {100 * p0:.1f}%, the "
            f"smallest change detected with {100 * args.power:g}% power at two-sided alpha = "
            f"{args.alpha:g} is {change(mdd.increase, '+')} (up) or "
            f"{change(mdd.decrease, '-')} (down)."
        )
    if args.json:
        from vla_eval.results import provenance

        _print_json({"schema": "vla-eval/plan/1", **body, "provenance": provenance()})
    else:
        print(text)
    return 0


# --- diagnose -----------------------------------------------------------------


def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="failure-table detectors over a finished run's metrics or over rollouts",
        description="Run the training-failure detectors offline over RUN_DIR/metrics.jsonl "
        "(or a metrics .jsonl), or check an episodes .jsonl whose records carry 'actions' "
        "for rollout jitter. Example: vla-eval diagnose runs/quickstart",
    )
    p.add_argument(
        "path", metavar="RUN_DIR|FILE.jsonl", help="run directory, metrics or episodes file"
    )
    p.add_argument(
        "--task-counts",
        help="dataset counts per task for the temperature suggestion, e.g. pick=50000,pour=500",
    )
    p.add_argument(
        "--fail-on",
        choices=("warning", "critical"),
        help="exit 1 if a finding of this severity (or worse) is raised",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run_diagnose)


def _run_diagnose(args: argparse.Namespace) -> int:
    from vla_eval.diagnose import offline

    counts = offline.parse_task_counts(args.task_counts) if args.task_counts else None
    result = offline.diagnose_path(args.path, task_counts=counts)
    if args.json:
        from vla_eval.results import provenance

        _print_json({**result, "provenance": provenance()})
    else:
        print(offline.format_result(result))
    severities = {f["severity"] for f in result["findings"]}
    failing = {"warning": {"warning", "critical"}, "critical": {"critical"}}.get(args.fail_on)
    return 1 if failing and severities & failing else 0


# --- train ----------------------------------------------------------------------


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the reference TinyVLA with a protocol's recipe",
        description="Train TinyVLA on the built-in world with the recipe of a protocol file "
        "(its [train] section). Writes metrics.jsonl, checkpoints/, findings.json and run.json.",
    )
    p.add_argument("protocol", help="protocol TOML file, e.g. protocols/quickstart.toml")
    p.add_argument("--out", help="run directory (default: runs/<protocol name>)")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    protocol = load_protocol(args.protocol)
    out = args.out or f"runs/{protocol.name}"
    result = train(protocol.train, out_dir=out, resume=args.resume, progress=not args.no_progress)
    print(
        f"trained {protocol.name}: {result.steps} steps in {result.seconds:.0f} s; "
        f"final loss {result.final_loss:.4f}; checkpoint {result.checkpoint}"
    )
    for split, m in sorted(result.heldout.get("heldout", {}).items()):
        print(
            f"  held-out {split}: action loss {m['loss']:.3f}, bin accuracy "
            f"{100 * m['accuracy']:.1f}%, L1 {m['l1']:.3f}"
        )
    print(f"  {len(result.findings)} Diagnose finding(s); see {out}/findings.json")
    return 0


# --- online ---------------------------------------------------------------------


def _add_online(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "online",
        help="roll a policy out in a simulated world and report success rates",
        description="Roll a checkpoint (or the environment's scripted expert: POLICY=expert) "
        "out over every task x split with seeds 0..N-1, append one episode record per "
        "finished episode, and print the success report. Crash-safe: --resume finishes an "
        "interrupted run exactly; --shard i/N splits the work.",
    )
    p.add_argument("policy", metavar="CKPT", help="checkpoint file, or 'expert'")
    p.add_argument(
        "--env", default="tabletop", help="tabletop (default), metaworld, metaworld-ml10"
    )
    p.add_argument("--trials", type=int, default=50, help="episodes per task and split")
    p.add_argument("--splits", default="seen,unseen", help="comma-separated splits")
    p.add_argument("--tasks", help="comma-separated task names (default: all)")
    p.add_argument("--out", help="episodes file (default: CKPT with .episodes.jsonl)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run")
    p.add_argument("--shard", default="0/1", help="i/N: run every N-th batch, starting at i")
    p.add_argument("--max-steps", type=int, help="step limit per episode")
    p.add_argument("--chunk-mode", default="open-loop", help="open-loop or ensemble")
    p.add_argument("--execute", type=int, help="actions executed per predicted chunk")
    p.add_argument("--batch-size", type=int, default=64, help="episodes stepped together")
    p.add_argument("--record-actions", action="store_true", help="store executed actions")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_online)


def _split_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise UsageError(f"expected a comma-separated list, got {text!r}")
    return items


def _run_online(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vla_eval import online
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes

    env = online.make_env(args.env)
    if args.policy == "expert":
        if args.env == "tabletop":
            from vla_eval.envs.tabletop import ExpertPolicy
        else:
            from vla_eval.envs.metaworld import MetaWorldExpertPolicy as ExpertPolicy
        policy, policy_id, name = ExpertPolicy(env), f"expert:{args.env}", "expert"
        out = Path(args.out or f"expert-{args.env}.episodes.jsonl")
    else:
        path = Path(args.policy)
        if not path.is_file():
            raise UsageError(f"{path}: no such checkpoint file")
        policy = online.CheckpointPolicy(path)
        if policy.action_dim != env.action_dim:
            raise UsageError(
                f"{path} predicts {policy.action_dim}-D actions but {env.name} takes "
                f"{env.action_dim}-D actions: this checkpoint does not fit this environment"
            )
        policy_id, name = policy.fingerprint(), f"{path.stem}"
        out = Path(args.out or path.with_suffix(".episodes.jsonl"))
    config = online.OnlineConfig(
        trials=args.trials,
        splits=_split_list(args.splits) or (),
        tasks=_split_list(args.tasks),
        max_steps=args.max_steps,
        batch_size=args.batch_size,
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
    shard = online.parse_shard(args.shard)
    online.run(
        env,
        policy,
        config,
        out,
        policy_id=policy_id,
        resume=args.resume,
        shard=shard,
        progress=not args.no_progress,
    )
    table = _load_quietly(lambda: load_episodes([out]))
    report = rep.build_report(table, splits=config.splits)
    if args.json:
        from vla_eval.results import provenance

        _print_json({**report, "episodes_file": str(out), "provenance": provenance()})
    else:
        print(rep.format_report(report))
        print(f"\nepisodes: {out}")
    return 0


# --- offline --------------------------------------------------------------------


def _add_offline(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "offline",
        help="held-out action-token loss, bin accuracy, L1/MSE of checkpoints or predictions",
        description="Offline metrics on held-out demonstrations: action-token loss, exact "
        "and within-k bin accuracy, L1/MSE per split, task, action dimension and chunk "
        "step, the dispersion ratio, and web VQA loss/accuracy. Several checkpoints give a "
        "learning curve. Examples: vla-eval offline runs/smoke/checkpoints/*.pt --out "
        "runs/smoke/offline; vla-eval offline --predictions preds.npz --tokenizer openvla",
    )
    p.add_argument(
        "checkpoints", nargs="*", metavar="CKPT", help="checkpoint files or run directories"
    )
    p.add_argument("--predictions", metavar="FILE.npz", help="score another model's predictions")
    g = p.add_argument_group("checkpoints")
    g.add_argument("--data", metavar="DIR_OR_NPZ", help="held-out dataset file(s) (save_dataset)")
    g.add_argument("--split", help="comma-separated splits (default: seen,unseen)")
    g.add_argument(
        "--per-task", type=int, metavar="N", help="built-in episodes per task and split (20)"
    )
    g.add_argument("--seed", type=int, metavar="S", help="built-in held-out data seed (0)")
    g.add_argument(
        "--web-examples", type=int, metavar="N", help="built-in held-out web VQA questions (500)"
    )
    g.add_argument("--batch-size", type=int, metavar="B", help="samples per forward pass (256)")
    g = p.add_argument_group("predictions")
    g.add_argument("--bins", type=int, metavar="N", help="action bins per dimension (256)")
    g.add_argument("--low", type=float, metavar="L", help="lower end of the binned range (-1)")
    g.add_argument("--high", type=float, metavar="H", help="upper end of the binned range (1)")
    g.add_argument("--tokenizer", choices=("uniform", "openvla"), help="binning scheme (uniform)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write DIR/offline.json and PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_offline)


def _run_offline(args: argparse.Namespace) -> int:
    from vla_eval import offline
    from vla_eval.results import provenance

    ckpt_opts = {
        "--data": args.data, "--split": args.split, "--per-task": args.per_task,
        "--seed": args.seed, "--web-examples": args.web_examples, "--batch-size": args.batch_size,
    }  # fmt: skip
    pred_opts = {
        "--bins": args.bins,
        "--low": args.low,
        "--high": args.high,
        "--tokenizer": args.tokenizer,
    }
    if args.predictions is not None:
        if args.checkpoints:
            raise UsageError("give checkpoints or --predictions FILE.npz, not both")
        used = [k for k, v in ckpt_opts.items() if v is not None]
        if used:
            raise UsageError(f"{used[0]} applies to checkpoints, not to --predictions")
        tokenizer = offline.prediction_tokenizer(
            args.tokenizer or "uniform", args.bins, args.low, args.high
        )
        result = offline.score_predictions(args.predictions, tokenizer)
        result["provenance"] = provenance(packages=("numpy",))
    else:
        if not args.checkpoints:
            raise UsageError("give one or more checkpoints, or --predictions FILE.npz")
        used = [k for k, v in pred_opts.items() if v is not None]
        if used:
            raise UsageError(
                f"{used[0]} applies to --predictions; a checkpoint carries its own action tokenizer"
            )
        if args.data is not None:
            builtin = ("--per-task", "--seed", "--web-examples")
            used = [k for k in builtin if ckpt_opts[k] is not None]
            if used:
                raise UsageError(f"{used[0]} describes the built-in held-out data, not --data")
        from vla_eval.envs.base import SPLITS

        splits = offline.parse_splits(args.split, None if args.data else SPLITS)
        result = offline.evaluate_checkpoints(
            args.checkpoints,
            data=args.data,
            splits=splits,
            per_task=20 if args.per_task is None else args.per_task,
            seed=0 if args.seed is None else args.seed,
            web_examples=500 if args.web_examples is None else args.web_examples,
            batch_size=256 if args.batch_size is None else args.batch_size,
            progress=not args.no_progress,
        )
        result["provenance"] = provenance(seeds=result["seeds"], packages=("numpy", "torch"))
    for w in result.get("warnings", []):
        _warn(w)
    if args.out:
        written = offline.write_offline(result, args.out)
        print(f"{PROG}: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    if args.json:
        _print_json(result)
    else:
        print(offline.format_offline(result))
    return 0


# --- quickstart -----------------------------------------------------------------


def _add_quickstart(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart",
        help="end-to-end demo: train a small policy, evaluate offline and online, diagnose",
        description="Train TinyVLA with the three-stage recipe on the built-in world "
        "(protocols/quickstart.toml), score it offline on held-out demonstrations and online "
        "in rollouts on both splits, run Diagnose, and write report.md, report.json and PNG "
        "figures. Rerunning resumes where it stopped. Minutes on a laptop CPU.",
    )
    p.add_argument("--out", default="quickstart", help="output folder (default: quickstart)")
    p.add_argument("--protocol", help="another protocol file instead of quickstart.toml")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_quickstart)


def _run_quickstart(args: argparse.Namespace) -> int:
    from vla_eval.quickstart import run_quickstart

    result = run_quickstart(args.out, args.protocol, progress=not args.no_progress)
    md = f"{args.out}/report.md"
    print(open(md, encoding="utf-8").read())
    print(
        f"wrote {md}, {args.out}/report.json and {', '.join(result['figures'])} "
        f"in {result['seconds']:.0f} s"
    )
    return 0


# --- run (experiments) ----------------------------------------------------------


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run an experiment: train each variant, evaluate, compare against the baseline",
        description="Run a protocol's experiment: every variant is trained with the recipe, "
        "scored offline and online (same seeds for every variant), and compared with the "
        "baseline (paired tests, Wilson and Newcombe intervals). Resumable.",
    )
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
    p.set_defaults(func=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    from vla_eval import experiment
    from vla_eval.protocol import load_protocol

    protocol = load_protocol(args.protocol)
    if args.dry_run:
        plan = experiment.dry_run(protocol, args.protocol, smoke=args.smoke)
        if args.json:
            _print_json(plan)
        else:
            for run in plan["runs"]:
                mark = " (baseline)" if run["baseline"] else ""
                print(
                    f"{run['variant']}{mark}: {run['steps']} steps, {run['trials']} trials per "
                    f"task and split; sets {run['set'] or 'nothing'}"
                )
        return 0
    out = args.out or f"runs/{protocol.name}"
    result = experiment.run_experiment(
        protocol,
        args.protocol,
        out,
        resume=args.resume,
        smoke=args.smoke,
        progress=not args.no_progress,
    )
    if args.json:
        _print_json(result)
    else:
        print(experiment.format_markdown(result))
        print(f"wrote {out}/experiment.md, experiment.json and {', '.join(result['figures'])}")
    return 0


# --- main -----------------------------------------------------------------------

_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_wilson,
    _add_sampling,
    _add_report,
    _add_compare,
    _add_plan,
    _add_diagnose,
    _add_train,
    _add_online,
    _add_quickstart,
    _add_run,
    _add_offline,
]


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommand arguments are cheap to build (no heavy imports)."""
    parser = _Parser(
        prog=PROG,
        description="Evaluate, compare and diagnose vision-language-action robot policies.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input)."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as exc:
        message = " ".join(str(exc).split())  # exactly one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
