"""Experiments: a protocol's variants trained, evaluated and compared (`vla-eval run`).

An experiment is a set of runs: each variant of a protocol changes some training
settings (dotted keys under ``[train]``, e.g. ``sampling.temperature``), is trained
with the recipe, scored offline on held-out demonstrations and online in rollouts
on both splits with the *same seeds* as every other variant, and its Diagnose
findings are collected. The results come together in one report with the
statistics each question needs: per-variant success with Wilson intervals per task
and split, paired comparisons against the baseline (McNemar's exact test on shared
seeds, Newcombe intervals, Holm-adjusted), and the analysis of the experiment's
kind (the four ablations of RECIPE.md). Every stage is resumable.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vla_eval.config import from_dict, to_dict
from vla_eval.errors import UsageError

SCHEMA = "vla-eval/experiment/1"

Kind = Literal["data_mix", "temperature_sweep", "stage_ablation", "hparam_sensitivity", "custom"]

#: What ``--smoke`` does to every variant before its own settings: the smallest run
#: that still goes through every stage of the recipe (seconds on a CPU).
SMOKE: dict[str, Any] = {
    "steps": 24,
    "batch_size": 16,
    "eval_every": 12,
    "checkpoint_every": 12,
    "threads": 1,
    "data.counts": {"pick": 8, "place": 8, "stack": 4, "pour": 4},
    "data.heldout_per_task": 2,
    "data.web_examples": 64,
    "model.width": 32,
    "model.depth": 1,
    "model.heads": 2,
    "model.vision_channels": 16,
}
SMOKE_TRIALS = 2


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment.

    Attributes:
        name: label in tables and plots (unique within the experiment).
        set: dotted keys under ``[train]`` and their values for this variant,
            e.g. ``{"sampling.temperature" = 2.0}``.
        group: for hyperparameter sensitivity, the hyperparameter this variant moves.
        description: a sentence for the report.
    """

    name: str
    set: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    description: str = ""


@dataclass(frozen=True)
class ExperimentConfig:
    """The ``[experiment]`` section of a protocol."""

    baseline: str
    variants: tuple[Variant, ...]
    kind: Kind = "custom"
    question: str = ""
    smoke: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [v.name for v in self.variants]
        if len(names) < 2:
            raise UsageError("an experiment needs at least two variants")
        if len(set(names)) != len(names):
            raise UsageError(f"variant names repeat: {names}")
        if self.baseline not in names:
            raise UsageError(f"baseline {self.baseline!r} is not one of the variants {names}")


@dataclass(frozen=True)
class RunSpec:
    """A variant made concrete: its training config and evaluation settings."""

    variant: Variant
    train: Any  # TrainConfig
    trials: int


def experiment_of(protocol: Any, source: str) -> ExperimentConfig:
    """The protocol's `ExperimentConfig` (UsageError if it has none)."""
    if protocol.experiment is None:
        raise UsageError(f"{source}: missing required section [experiment] (variants to compare)")
    return protocol.experiment


def _set_dotted(tree: dict[str, Any], key: str, value: Any, where: str) -> None:
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise UsageError(f"{where}: unknown key train.{key}")
        node = node[part]
    if parts[-1] not in node:
        raise UsageError(f"{where}: unknown key train.{key}")
    node[parts[-1]] = copy.deepcopy(value)


def plan_runs(protocol: Any, source: str, smoke: bool = False) -> list[RunSpec]:
    """Every variant's training config: base [train], then --smoke, then the variant."""
    from vla_eval.trainer.train import TrainConfig

    exp = experiment_of(protocol, source)
    base = to_dict(protocol.train)
    specs = []
    for i, variant in enumerate(exp.variants):
        tree = copy.deepcopy(base)
        if smoke:
            for key, value in {**SMOKE, **exp.smoke}.items():
                _set_dotted(tree, key, value, f"{source}: experiment.smoke")
        for key, value in variant.set.items():
            _set_dotted(tree, key, value, f"{source}: experiment.variants[{i}].set")
        tree["name"] = variant.name
        train = from_dict(TrainConfig, tree, f"{source} (variant {variant.name})", prefix="train")
        specs.append(RunSpec(variant, train, SMOKE_TRIALS if smoke else protocol.evaluate.trials))
    return specs


def dry_run(protocol: Any, source: str, smoke: bool = False) -> dict[str, Any]:
    """``{"runs": [...]}``: each run's variant and the settings it changes, nothing trained."""
    exp = experiment_of(protocol, source)
    runs = []
    for spec in plan_runs(protocol, source, smoke):
        runs.append(
            {
                "variant": spec.variant.name,
                "baseline": spec.variant.name == exp.baseline,
                "group": spec.variant.group or None,
                "set": _config_json(spec.variant.set),
                "steps": spec.train.steps,
                "trials": spec.trials,
                "train": _config_json(to_dict(spec.train)),
            }
        )
    return {"schema": SCHEMA, "experiment": protocol.name, "kind": exp.kind, "runs": runs}


def _config_json(value: Any) -> Any:
    """Settings as JSON: an infinite temperature is written "inf" (strict JSON has no inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _config_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_config_json(v) for v in value]
    return value


# --- running -------------------------------------------------------------------------


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
    from vla_eval import offline, online
    from vla_eval.envs.tabletop import TabletopEnv
    from vla_eval.trainer.train import latest_checkpoint, train

    run_dir = out / "train"
    final = run_dir / "checkpoints" / f"step_{train_config.steps:06d}.pt"
    if not final.exists():
        resume = latest_checkpoint(run_dir) is not None
        train(train_config, out_dir=run_dir, resume=resume, progress=progress)
    scored = offline.evaluate_checkpoints(
        [str(final)], per_task=train_config.data.heldout_per_task, seed=train_config.data.seed
    )
    if offline_plots:
        offline.write_offline(scored, out)
    policy = online.CheckpointPolicy(final)
    config = online.OnlineConfig(
        trials=trials,
        splits=evaluate.splits,
        batch_size=evaluate.batch_size,
        chunk_mode=evaluate.chunk_mode,
        execute=evaluate.execute,
        policy_name=name,
        record_actions=record_actions,
    )
    episodes = out / "episodes.jsonl"
    online.run(
        TabletopEnv(),
        policy,
        config,
        episodes,
        policy_id=policy.fingerprint(),
        resume=episodes.exists(),
        progress=progress,
    )
    return {
        "offline": scored["results"][-1]["metrics"],
        "stability": stability(run_dir / "metrics.jsonl"),
        "findings": json.loads((run_dir / "findings.json").read_text())["findings"],
        "episodes": str(episodes),
        "checkpoint": str(final),
        "run": json.loads((run_dir / "run.json").read_text()),
    }


def stability(metrics_path: Path, window: int = 50, spike: float = 3.0) -> dict[str, Any]:
    """Training stability from metrics.jsonl: loss spikes and gradient-norm spread.

    A loss spike is a step whose loss exceeds `spike` times the median of the previous
    `window` steps; non-finite losses count as spikes.
    """
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    loss = np.array([r["loss"] if isinstance(r["loss"], (int, float)) else np.inf for r in rows])
    grad = np.array(
        [r["grad_norm"] if isinstance(r["grad_norm"], (int, float)) else np.nan for r in rows]
    )
    spikes = 0
    for i in range(1, len(loss)):
        ref = np.median(loss[max(0, i - window) : i])
        if not np.isfinite(loss[i]) or (np.isfinite(ref) and loss[i] > spike * ref):
            spikes += 1
    finite = grad[np.isfinite(grad)]
    tail = loss[-max(1, len(loss) // 10) :]
    return {
        "loss_spikes": spikes,
        "grad_norm_mean": float(finite.mean()) if finite.size else None,
        "grad_norm_var": float(finite.var()) if finite.size else None,
        "final_loss": float(np.mean(tail)) if np.all(np.isfinite(tail)) else None,
        "nonfinite_steps": int((~np.isfinite(loss)).sum()),
    }


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
    from vla_eval import report as rep
    from vla_eval.episodes import load_episodes
    from vla_eval.results import provenance, write_json

    exp = experiment_of(protocol, source)
    specs = plan_runs(protocol, source, smoke)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not resume:
        raise UsageError(f"{out} already holds an experiment; pass --resume to continue it")
    started = time.time()
    results: dict[str, dict[str, Any]] = {}
    for i, spec in enumerate(specs, 1):
        if progress:
            print(f"[{i}/{len(specs)}] {spec.variant.name}", file=sys.stderr, flush=True)
        results[spec.variant.name] = train_and_evaluate(
            spec.train,
            protocol.evaluate,
            out / f"{i:02d}-{_slug(spec.variant.name)}",
            name=spec.variant.name,
            trials=spec.trials,
            progress=progress,
        )

    tables = {name: load_episodes([r["episodes"]]) for name, r in results.items()}
    variants = []
    for spec in specs:
        name = spec.variant.name
        success = rep.build_report(tables[name], splits=protocol.evaluate.splits)
        variants.append(
            {
                "name": name,
                "group": spec.variant.group or None,
                "set": _config_json(spec.variant.set),
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
    result = {
        "schema": SCHEMA,
        "experiment": protocol.name,
        "kind": exp.kind,
        "question": exp.question or protocol.description,
        "baseline": exp.baseline,
        "smoke": smoke,
        "variants": variants,
        "comparisons": comparisons,
        "analysis": analyse(exp, variants, comparisons),
        "seconds": time.time() - started,
        "provenance": provenance(seeds={"train": protocol.train.seed, "online": "0..trials-1"}),
    }
    result["figures"] = [p.name for p in plot_experiment(result, out)]
    write_json(out / "experiment.json", result)
    (out / "experiment.md").write_text(format_markdown(result))
    return result


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _offline_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    web = metrics.get("web") or {}
    return {
        "per_split": {
            s: {k: v.get(k) for k in ("loss", "accuracy", "within_2", "l1")}
            for s, v in metrics["per_split"].items()
        },
        "web_loss": web.get("loss"),
        "web_accuracy": web.get("accuracy"),
    }


def _pooled(variant: dict[str, Any], split: str) -> dict[str, Any] | None:
    for s in variant["success"]["splits"]:
        if s["split"] == split:
            return s["pooled"]
    return None


def _task_rates(variant: dict[str, Any], split: str = "seen") -> dict[str, float]:
    return {g["task"]: g["rate"] for g in variant["success"]["groups"] if g.get("split") == split}


# --- analysis per kind -------------------------------------------------------------------


def analyse(exp: ExperimentConfig, variants: list[dict], comparisons: dict) -> dict[str, Any]:
    """The experiment's answer, in numbers and one sentence, with its statistics."""
    by_name = {v["name"]: v for v in variants}

    def diff(name: str) -> dict[str, Any] | None:
        c = comparisons.get(name)
        return c["pairs"][0] if c else None

    out: dict[str, Any] = {}
    if exp.kind == "temperature_sweep":
        # Balance = the worst task's seen success (ties: the mean over tasks).
        scores = {}
        for v in variants:
            rates = _task_rates(v)
            scores[v["name"]] = (
                min(rates.values()) if rates else 0.0,
                float(np.mean(list(rates.values()))) if rates else 0.0,
            )
        best = max(scores, key=lambda n: scores[n])
        out["worst_task_rate"] = {n: s[0] for n, s in scores.items()}
        out["mean_task_rate"] = {n: s[1] for n, s in scores.items()}
        out["best"] = best
        d = diff(best)
        out["answer"] = (
            f"{best} balances common and rare tasks best (worst task {100 * scores[best][0]:.0f}%, "
            f"mean {100 * scores[best][1]:.0f}%)"
            + (f"; against {exp.baseline}: {d['verdict']}" if d else " (it is the baseline)")
        )
    elif exp.kind == "data_mix":
        rows = {
            v["name"]: (
                v["offline"]["per_split"].get("seen", {}).get("accuracy"),
                v["offline"]["web_accuracy"],
            )
            for v in variants
        }
        out["action_accuracy"] = {n: r[0] for n, r in rows.items()}
        out["language_retention"] = {n: r[1] for n, r in rows.items()}
        best_lang = max(rows, key=lambda n: rows[n][1] or 0.0)
        best_act = max(rows, key=lambda n: rows[n][0] or 0.0)
        out["answer"] = (
            f"held-out action accuracy is highest with {best_act} "
            f"({_pct(rows[best_act][0])}); language retention (web VQA accuracy) is highest "
            f"with {best_lang} ({_pct(rows[best_lang][1])})"
        )
    elif exp.kind == "stage_ablation":
        out["stability"] = {v["name"]: v["stability"] for v in variants}
        parts = []
        for v in variants:
            s, p = v["stability"], _pooled(v, "seen")
            parts.append(
                f"{v['name']}: seen success {_pct(p['rate'] if p else None)}, "
                f"{s['loss_spikes']} loss spikes, grad-norm variance "
                f"{_num(s['grad_norm_var'])}"
            )
        others = [n for n in by_name if n != exp.baseline]
        verdicts = [diff(n)["verdict"] for n in others if diff(n)]
        out["answer"] = "; ".join(parts) + (". " + " ".join(verdicts) if verdicts else "")
    elif exp.kind == "hparam_sensitivity":
        effects: dict[str, dict[str, Any]] = {}
        for name, c in comparisons.items():
            group = by_name[name]["group"] or name
            pair = c["pairs"][0]
            # The pair is (baseline, variant): the variant's effect is rate_b - rate_a.
            effect = pair["rate_b"] - pair["rate_a"]
            cur = effects.get(group)
            if cur is None or abs(effect) > abs(cur["effect"]):
                d = pair["difference"]
                effects[group] = {
                    "variant": name,
                    "effect": effect,
                    "lower": -d["upper"],
                    "upper": -d["lower"],
                    "p_value": pair["p_value"],
                    "significant": pair["significant"],
                }
        out["effects"] = effects
        if effects:
            top = max(effects, key=lambda g: abs(effects[g]["effect"]))
            e = effects[top]
            out["most_sensitive"] = top
            out["answer"] = (
                f"{top} moves success most: {e['variant']} changes it by "
                f"{100 * e['effect']:+.1f} points (95% CI {100 * e['lower']:+.1f} to "
                f"{100 * e['upper']:+.1f}), p = {e['p_value']:.3g}"
                + ("" if e["significant"] else "; not significant: more trials are needed to tell")
            )
    else:
        out["answer"] = " ".join(diff(n)["verdict"] for n in comparisons if diff(n))
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


# --- output --------------------------------------------------------------------------


def plot_experiment(result: dict[str, Any], out: Path) -> list[Path]:
    """Per-variant success (forest), per-task success per variant, offline + language bars."""
    from vla_eval import plots

    labels, groups, est, lo, hi, notes = [], [], [], [], [], []
    for v in result["variants"]:
        for s in v["success"]["splits"]:
            p = s["pooled"]
            labels.append(v["name"])
            groups.append(s["split"])
            est.append(p["rate"])
            lo.append(p["lower"])
            hi.append(p["upper"])
            notes.append(f"{p['successes']}/{p['trials']}")
    paths = [
        plots.forest_plot(
            out / "success_by_variant.png",
            labels,
            groups,
            est,
            lo,
            hi,
            notes,
            title=f"{result['experiment']}: success per variant (95% Wilson)",
        )
    ]
    rows = []
    for v in result["variants"]:
        for g in v["success"]["groups"]:
            rows.append((v["name"], g["task"], g.get("split"), g["rate"], g["lower"], g["upper"]))
    paths.append(
        plots.variant_task_plot(
            out / "success_by_task.png", rows, title=f"{result['experiment']}: success per task"
        )
    )
    metrics = {
        "held-out action accuracy (seen)": [
            v["offline"]["per_split"].get("seen", {}).get("accuracy") for v in result["variants"]
        ],
        "web VQA accuracy (language retention)": [
            v["offline"]["web_accuracy"] for v in result["variants"]
        ],
    }
    paths.append(
        plots.variant_bars_plot(
            out / "offline_by_variant.png", [v["name"] for v in result["variants"]], metrics
        )
    )
    return paths


def format_markdown(result: dict[str, Any]) -> str:
    """experiment.md: the question, the answer, and the tables behind it."""
    lines = [f"# Experiment: {result['experiment']}", ""]
    if result["question"]:
        lines += [result["question"], ""]
    lines += [f"**Answer.** {result['analysis'].get('answer', '')}", ""]
    if result["smoke"]:
        lines += [
            "*Smoke-sized run (--smoke): the numbers exercise the pipeline, they do not "
            "answer the question.*",
            "",
        ]
    lines += [
        "## Variants",
        "",
        "| variant | seen success (95% CI) | unseen success (95% CI) | held-out bin accuracy | "
        "web VQA accuracy | loss spikes | findings |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for v in result["variants"]:
        cells = []
        for split in ("seen", "unseen"):
            p = _pooled(v, split)
            cells.append(
                "n/a"
                if p is None
                else f"{_pct(p['rate'])} ({_pct(p['lower'])}–{_pct(p['upper'])}), "
                f"{p['successes']}/{p['trials']}"
            )
        acc = v["offline"]["per_split"].get("seen", {}).get("accuracy")
        name = v["name"] + (" (baseline)" if v["name"] == result["baseline"] else "")
        lines.append(
            f"| {name} | {cells[0]} | {cells[1]} | {_pct(acc)} | "
            f"{_pct(v['offline']['web_accuracy'])} | {v['stability']['loss_spikes']} | "
            f"{len(v['findings'])} |"
        )
    lines += ["", f"## Against the baseline ({result['baseline']}), paired on seeds", ""]
    for name, c in result["comparisons"].items():
        lines.append(f"- **{name}**: {c['pairs'][0]['verdict']}")
    lines += ["", "## Figures", ""] + [f"![{p}]({p})" for p in result["figures"]]
    return "\n".join(lines) + "\n"
