"""`vla-eval offline`: held-out metrics of checkpoints, or of another model's predictions.

Scoring a predictions file is numpy only; torch is imported only for checkpoints.
"""

from __future__ import annotations

import argparse
import sys

from vla_eval.cli.common import (
    PROG,
    output_dir,
    print_json,
    real_number,
    seed_number,
    warn,
    whole_number,
)
from vla_eval.errors import UsageError

MAX_BINS = 65_536  # action bins per dimension (OpenVLA uses 256)

NAME = "offline"
HELP = "held-out action-token loss, bin accuracy, L1/MSE of checkpoints or predictions"
DESCRIPTION = (
    "Offline metrics on held-out demonstrations: action-token loss, exact "
    "and within-k bin accuracy, L1/MSE per split, task, action dimension and chunk "
    "step, the dispersion ratio, and web VQA loss/accuracy. Several checkpoints give a "
    "learning curve. Examples: vla-eval offline runs/smoke/checkpoints/*.pt --out "
    "runs/smoke/offline; vla-eval offline --predictions preds.npz --tokenizer openvla"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoints", nargs="*", metavar="CKPT", help="checkpoint files or run directories"
    )
    p.add_argument("--predictions", metavar="FILE.npz", help="score another model's predictions")
    g = p.add_argument_group("checkpoints")
    g.add_argument("--data", metavar="DIR_OR_NPZ", help="held-out dataset file(s) (save_dataset)")
    g.add_argument("--split", help="comma-separated splits (default: seen,unseen)")
    g.add_argument(
        "--per-task",
        type=whole_number(1, 100_000),
        metavar="N",
        help="built-in episodes per task and split (20)",
    )
    g.add_argument(
        "--seed", type=seed_number(), metavar="S", help="built-in held-out data seed (0)"
    )
    g.add_argument(
        "--web-examples",
        type=whole_number(0, 1_000_000),
        metavar="N",
        help="built-in held-out web VQA questions (500)",
    )
    g.add_argument(
        "--batch-size",
        type=whole_number(1, 65_536),
        metavar="B",
        help="samples per forward pass (256)",
    )
    g = p.add_argument_group("predictions")
    g.add_argument(
        "--bins",
        type=whole_number(2, MAX_BINS),
        metavar="N",
        help="action bins per dimension (256)",
    )
    g.add_argument(
        "--low", type=real_number(-1e6, 1e6), metavar="L", help="lower end of the binned range (-1)"
    )
    g.add_argument(
        "--high", type=real_number(-1e6, 1e6), metavar="H", help="upper end of the binned range (1)"
    )
    g.add_argument("--tokenizer", choices=("uniform", "openvla"), help="binning scheme (uniform)")
    g = p.add_argument_group("LeRobot datasets")
    g.add_argument("--dataset", metavar="DIR", help="score --policy on a local LeRobotDataset")
    g.add_argument("--policy", metavar="SPEC", help="the policy --dataset scores (lerobot)")
    g.add_argument(
        "--policy-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument of the policy's factory (path=DIR, device=cpu); repeatable",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write DIR/offline.json and PNG plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _checkpoint_options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "--data": args.data, "--split": args.split, "--per-task": args.per_task,
        "--seed": args.seed, "--web-examples": args.web_examples, "--batch-size": args.batch_size,
    }  # fmt: skip


def _prediction_options(args: argparse.Namespace) -> dict[str, object]:
    return {
        "--bins": args.bins,
        "--low": args.low,
        "--high": args.high,
        "--tokenizer": args.tokenizer,
    }


def _score_predictions(args: argparse.Namespace) -> dict:
    from vla_eval.offline import predictions
    from vla_eval.results import provenance

    if args.checkpoints:
        raise UsageError("give checkpoints or --predictions FILE.npz, not both")
    used = [k for k, v in _checkpoint_options(args).items() if v is not None]
    if used:
        raise UsageError(f"{used[0]} applies to checkpoints, not to --predictions")
    tokenizer = predictions.prediction_tokenizer(
        args.tokenizer or "uniform", args.bins, args.low, args.high
    )
    result = predictions.score_predictions(args.predictions, tokenizer)
    result["provenance"] = provenance(packages=("numpy",))
    return result


def _evaluate_checkpoints(args: argparse.Namespace) -> dict:
    from vla_eval.offline.evaluate import evaluate_checkpoints
    from vla_eval.offline.heldout import parse_splits
    from vla_eval.results import provenance

    if not args.checkpoints:
        raise UsageError("give one or more checkpoints, or --predictions FILE.npz")
    used = [k for k, v in _prediction_options(args).items() if v is not None]
    if used:
        raise UsageError(
            f"{used[0]} applies to --predictions; a checkpoint carries its own action tokenizer"
        )
    if args.data is not None:
        ckpt_opts = _checkpoint_options(args)
        used = [k for k in ("--per-task", "--seed", "--web-examples") if ckpt_opts[k] is not None]
        if used:
            raise UsageError(f"{used[0]} describes the built-in held-out data, not --data")
    from vla_eval.envs.base import SPLITS

    splits = parse_splits(args.split, None if args.data else SPLITS)
    result = evaluate_checkpoints(
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
    return result


def _score_dataset(args: argparse.Namespace) -> dict:
    from vla_eval.cli.online import parse_assignments
    from vla_eval.offline.lerobot_dataset import score_dataset
    from vla_eval.policies.registry import check_arguments, resolve
    from vla_eval.results import provenance

    if args.checkpoints or args.predictions is not None:
        raise UsageError("give one of: checkpoints, --predictions FILE.npz, --dataset DIR")
    if args.policy is None:
        raise UsageError("--dataset needs --policy (e.g. --policy lerobot --policy-arg path=DIR)")
    options = {**_checkpoint_options(args), **_prediction_options(args)}
    used = [
        k
        for k, v in options.items()
        if v is not None and k not in ("--bins", "--seed", "--batch-size")
    ]
    if used:
        raise UsageError(f"{used[0]} does not apply to --dataset")
    factory = resolve(args.policy)
    policy_args = parse_assignments(args.policy_arg, "--policy-arg")
    check_arguments(factory, None, policy_args)
    policy = factory.make(None, **policy_args)
    try:
        result = score_dataset(
            args.dataset,
            policy,
            bins=256 if args.bins is None else args.bins,
            batch_size=32 if args.batch_size is None else args.batch_size,
            seed=0 if args.seed is None else args.seed,
        )
    finally:
        if hasattr(policy, "close"):
            policy.close()
    result["provenance"] = provenance(seeds=result["seeds"], packages=("numpy", "torch", "lerobot"))
    return result


def run(args: argparse.Namespace) -> int:
    from vla_eval.offline.output import format_offline, write_offline

    if args.out:
        output_dir(args.out)  # refuse an unusable --out before any work
    if args.policy is not None and args.dataset is None:
        raise UsageError("--policy applies to --dataset DIR")
    if args.dataset is not None:
        result = _score_dataset(args)
    elif args.predictions is not None:
        result = _score_predictions(args)
    else:
        result = _evaluate_checkpoints(args)
    for w in result.get("warnings", []):
        warn(w)
    if args.out:
        written = write_offline(result, args.out)
        print(f"{PROG}: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    if args.json:
        print_json(result)
    elif result["kind"] == "lerobot-dataset":
        from vla_eval.offline.lerobot_dataset import format_dataset

        print(format_dataset(result))
    else:
        print(format_offline(result))
    return 0
