"""Running an experiment: train and evaluate every variant, compare each with the baseline.

The orchestration layer of `vla-eval run` (and of the quickstart's one run): it calls
the trainer, the offline and online evaluators and the report, and imports each of
them (and so torch) inside the functions that need it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from vla_eval.errors import UsageError
from vla_eval.experiment.analyse import analyse, stability
from vla_eval.experiment.config import SCHEMA, SCHEMA_SEEDS, ExperimentConfig
from vla_eval.experiment.output import format_markdown, plot_experiment
from vla_eval.experiment.plan import RunSpec, experiment_of, plan_runs
from vla_eval.results import to_jsonable


def train_and_evaluate(
    train_config: Any,
    evaluate: Any,
    out: Path,
    *,
    name: str,
    trials: int,
    progress: bool = True,
    record_actions: bool = False,
    offline_plots: bool = False,
) -> dict[str, Any]:
    """One run end to end, resumably: train (or finish training) into ``out/train``,
    score the final checkpoint offline, roll it out online into ``out/episodes.jsonl``.

    Returns the offline metrics, training stability, Diagnose findings, the episodes
    file and the final checkpoint.
    """
    from vla_eval.offline.evaluate import evaluate_checkpoints
    from vla_eval.offline.output import write_offline
    from vla_eval.trainer.run_dir import latest_checkpoint
    from vla_eval.trainer.train import train

    run_dir = out / "train"
    final = run_dir / "checkpoints" / f"step_{train_config.steps:06d}.pt"
    if not (final.exists() and (run_dir / "run.json").exists()):  # else: finished before
        resume = latest_checkpoint(run_dir) is not None
        train(train_config, out_dir=run_dir, resume=resume, progress=progress)
    scored = evaluate_checkpoints(
        [str(final)], per_task=train_config.data.heldout_per_task, seed=train_config.data.seed
    )
    if offline_plots:
        write_offline(scored, out)
    episodes = out / "episodes.jsonl"
    _roll_out(final, evaluate, episodes, name, trials, progress, record_actions)
    return {
        "offline": scored["results"][-1]["metrics"],
        "stability": stability(run_dir / "metrics.jsonl"),
        "findings": read_findings(run_dir / "findings.json"),
        "episodes": str(episodes),
        "checkpoint": str(final),
        "run": read_object(run_dir / "run.json"),
    }


def read_object(path: Path) -> dict[str, Any]:
    """A JSON object file of a run (run.json), read strictly; errors name the file."""
    from vla_eval.errors import DataError
    from vla_eval.inputs import load_json_file

    obj = load_json_file(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_findings(path: Path) -> list[Any]:
    """The ``findings`` list of a run's findings.json, read strictly; errors name the file."""
    from vla_eval.errors import DataError

    findings = read_object(path).get("findings")
    if not isinstance(findings, list):
        raise DataError(f"{path}: 'findings' must be a list, got {type(findings).__name__}")
    return findings


def _roll_out(
    checkpoint: Path,
    evaluate: Any,
    episodes: Path,
    name: str,
    trials: int,
    progress: bool,
    record_actions: bool,
) -> None:
    """Roll the checkpoint out in the tabletop world on every split, resuming `episodes`."""
    from vla_eval import online
    from vla_eval.envs.tabletop import TabletopEnv
    from vla_eval.policies.checkpoint import CheckpointPolicy

    policy = CheckpointPolicy(checkpoint)
    config = online.OnlineConfig(
        trials=trials,
        splits=evaluate.splits,
        batch_size=evaluate.batch_size,
        chunk_mode=evaluate.chunk_mode,
        execute=evaluate.execute,
        policy_name=name,
        record_actions=record_actions,
    )
    online.run(
        TabletopEnv(),
        policy,
        config,
        episodes,
        policy_id=policy.fingerprint(),
        resume=episodes.exists(),
        progress=progress,
    )


def run_experiment(
    protocol: Any,
    source: str,
    out: str | Path,
    *,
    resume: bool = False,
    smoke: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every variant, then compare them; writes experiment.json/.md and figures."""
    from vla_eval.locking import output_lock

    exp = experiment_of(protocol, source)
    specs = plan_runs(protocol, source, smoke)
    out = Path(out)
    with output_lock(out, "experiment directory", directory=True) as lock:
        if any(p != lock for p in out.iterdir()) and not resume:
            raise UsageError(f"{out} already holds an experiment; pass --resume to continue it")
        return _run_variants(protocol, exp, specs, out, smoke, progress)


def _run_variants(
    protocol: Any,
    exp: ExperimentConfig,
    specs: list[RunSpec],
    out: Path,
    smoke: bool,
    progress: bool,
) -> dict[str, Any]:
    """Train and evaluate every variant into `out` (locked), compare them, write the report."""
    from vla_eval.results import provenance, write_json, write_text

    started = time.time()
    runs: dict[str, list[dict[str, Any]]] = {}
    for i, spec in enumerate(specs, 1):
        if progress:
            seed = "" if spec.seed is None else f" (seed {spec.seed})"
            print(f"[{i}/{len(specs)}] {spec.variant.name}{seed}", file=sys.stderr, flush=True)
        folder = run_folder(out, spec)
        result = train_and_evaluate(
            spec.train,
            protocol.evaluate,
            folder,
            name=spec.variant.name,
            trials=spec.trials,
            progress=progress,
        )
        result["dir"] = folder.relative_to(out).as_posix()
        result["seed"] = spec.train.seed
        runs.setdefault(spec.variant.name, []).append(result)
    first = {name: r[0] for name, r in runs.items()}
    one_each = [s for s in specs if s.seed is None or s.seed == exp.seeds_of(s.variant)[0]]
    variants, comparisons = compare_variants(exp, one_each, first, protocol.evaluate.splits)
    seeds = {"train": protocol.train.seed, "online": "0..trials-1"}
    if exp.seeded:
        add_seed_statistics(exp, runs, variants, comparisons, protocol.evaluate.splits)
        seeds = {**seeds, "train": {v["name"]: v["runs"]["seeds"] for v in variants}}
        seeds["bootstrap"] = _bootstrap_seed()
    result = {
        "schema": SCHEMA_SEEDS if exp.seeded else SCHEMA,
        "experiment": protocol.name,
        "kind": exp.kind,
        "question": exp.question or protocol.description,
        "baseline": exp.baseline,
        "smoke": smoke,
        "variants": variants,
        "comparisons": comparisons,
        "analysis": analyse(exp, variants, comparisons),
        "seconds": time.time() - started,
        "provenance": provenance(seeds=seeds),
    }
    result["figures"] = [p.name for p in plot_experiment(result, out)]
    write_json(out / "experiment.json", result)
    write_text(out / "experiment.md", format_markdown(result))
    return result


def _bootstrap_seed() -> int:
    from vla_eval.experiment.seeds import BOOTSTRAP_SEED

    return BOOTSTRAP_SEED


def add_seed_statistics(
    exp: ExperimentConfig,
    runs: dict[str, list[dict[str, Any]]],
    variants: list[dict[str, Any]],
    comparisons: dict[str, Any],
    splits: tuple[str, ...],
) -> None:
    """Add each variant's ``runs`` block (every training seed's counts, the two-level
    bootstrap mean and IQM, the seeds/episodes spread) and each comparison's
    probability of improvement over the baseline, resampling training runs."""
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes
    from vla_eval.experiment import seeds as sd

    blocks = {}
    for v in variants:
        name = v["name"]
        mine = runs[name]
        counts = [
            sd.run_counts(rep.build_report(load_episodes([r["episodes"]]), splits=splits))
            for r in mine
        ]
        columns = sorted(counts[0])
        run_seeds = [r["seed"] for r in mine]
        blocks[name] = sd.variant_runs(run_seeds, [r["dir"] for r in mine], counts, columns)
        v["runs"] = blocks[name]
    for name, c in comparisons.items():
        c["runs"] = {
            "probability_of_improvement": sd.improvement(blocks[name], blocks[exp.baseline])
        }


def compare_variants(
    exp: ExperimentConfig,
    specs: list[RunSpec],
    results: dict[str, dict[str, Any]],
    splits: tuple[str, ...],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each variant's summary (success, offline, stability, findings) and its paired
    comparison with the baseline."""
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes

    tables = {name: load_episodes([r["episodes"]]) for name, r in results.items()}
    variants = []
    for spec in specs:
        name = spec.variant.name
        success = rep.build_report(tables[name], splits=splits)
        variants.append(
            {
                "name": name,
                "group": spec.variant.group or None,
                "set": to_jsonable(spec.variant.set),
                "description": spec.variant.description,
                "success": success,
                "offline": _offline_summary(results[name]["offline"]),
                "stability": results[name]["stability"],
                "findings": results[name]["findings"],
            }
        )
    comparisons = {}
    for spec in specs:
        name = spec.variant.name
        if name == exp.baseline:
            continue
        comparisons[name] = rep.build_comparison(
            [(exp.baseline, tables[exp.baseline]), (name, tables[name])], paired=True
        )
    return variants, comparisons


def variant_dir(out: Path, index: int, name: str) -> Path:
    """The folder of the `index`-th (from 1) variant's run inside the experiment's `out`."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return out / f"{index:02d}-{slug}"


def run_folder(out: Path, spec: RunSpec) -> Path:
    """The folder of one run: its variant's folder, and ``seed-N`` inside it when the
    variant has a list of seeds."""
    folder = variant_dir(out, spec.index, spec.variant.name)
    return folder if spec.seed is None else folder / f"seed-{spec.seed}"


def _offline_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    web = metrics.get("web") or {}
    return {
        "per_split": {
            s: {k: v.get(k) for k in ("loss", "accuracy", "within_2", "l1", "count")}
            for s, v in metrics["per_split"].items()
        },
        "web_loss": web.get("loss"),
        "web_accuracy": web.get("accuracy"),
        "web_count": web.get("count"),
    }
