"""The answer to an experiment's question, per kind, and each run's training stability.

Works on the plain dictionaries that `run` collects (success reports, comparisons,
offline summaries): numpy only, never torch or the trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.diagnose.spikes import count_spikes
from vla_eval.experiment.config import ExperimentConfig
from vla_eval.formatting import pct
from vla_eval.jsonl import iter_jsonl


def stability(metrics_path: Path, window: int = 50, spike: float = 3.0) -> dict[str, Any]:
    """Training stability from metrics.jsonl: loss spikes and gradient-norm spread.

    A loss spike is a step whose loss exceeds `spike` times the median of the previous
    `window` steps; non-finite losses count as spikes (the one spike definition,
    `vla_eval.diagnose.spikes.count_spikes`).
    """
    rows = [record for _, record in iter_jsonl(metrics_path)]  # the one JSONL reader
    loss = np.array([r["loss"] if isinstance(r["loss"], (int, float)) else np.inf for r in rows])
    grad = np.array(
        [r["grad_norm"] if isinstance(r["grad_norm"], (int, float)) else np.nan for r in rows]
    )
    spikes = count_spikes(loss.tolist(), window, spike)
    finite = grad[np.isfinite(grad)]
    tail = loss[-max(1, len(loss) // 10) :]
    return {
        "loss_spikes": spikes,
        "grad_norm_mean": float(finite.mean()) if finite.size else None,
        "grad_norm_var": float(finite.var()) if finite.size else None,
        "final_loss": float(np.mean(tail)) if np.all(np.isfinite(tail)) else None,
        "nonfinite_steps": int((~np.isfinite(loss)).sum()),
    }


def pooled(variant: dict[str, Any], split: str) -> dict[str, Any] | None:
    """The variant's pooled success on `split` (None if it has no episodes there)."""
    for s in variant["success"]["splits"]:
        if s["split"] == split:
            return s["pooled"]
    return None


def _task_rates(variant: dict[str, Any], split: str = "seen") -> dict[str, float]:
    return {g["task"]: g["rate"] for g in variant["success"]["groups"] if g.get("split") == split}


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _pair(comparisons: dict, name: str) -> dict[str, Any] | None:
    """The (baseline, `name`) pair of the comparisons, or None for the baseline."""
    c = comparisons.get(name)
    return c["pairs"][0] if c else None


def analyse(exp: ExperimentConfig, variants: list[dict], comparisons: dict) -> dict[str, Any]:
    """The experiment's answer, in numbers and one sentence, with its statistics."""
    if exp.kind == "temperature_sweep":
        return _temperature_sweep(exp, variants, comparisons)
    if exp.kind == "data_mix":
        return _data_mix(variants)
    if exp.kind == "stage_ablation":
        return _stage_ablation(exp, variants, comparisons)
    if exp.kind == "hparam_sensitivity":
        return _hparam_sensitivity(variants, comparisons)
    verdicts = [_pair(comparisons, n)["verdict"] for n in comparisons if _pair(comparisons, n)]
    return {"answer": " ".join(verdicts)}


def _temperature_sweep(
    exp: ExperimentConfig, variants: list[dict], comparisons: dict
) -> dict[str, Any]:
    # Balance = the worst task's seen success (ties: the mean over tasks).
    scores = {}
    for v in variants:
        rates = _task_rates(v)
        scores[v["name"]] = (
            min(rates.values()) if rates else 0.0,
            float(np.mean(list(rates.values()))) if rates else 0.0,
        )
    best = max(scores, key=lambda n: scores[n])
    out: dict[str, Any] = {
        "worst_task_rate": {n: s[0] for n, s in scores.items()},
        "mean_task_rate": {n: s[1] for n, s in scores.items()},
        "best": best,
    }
    d = _pair(comparisons, best)
    out["answer"] = (
        f"{best} balances common and rare tasks best (worst task {100 * scores[best][0]:.0f}%, "
        f"mean {100 * scores[best][1]:.0f}%)"
        + (f"; against {exp.baseline}: {d['verdict']}" if d else " (it is the baseline)")
    )
    return out


def _data_mix(variants: list[dict]) -> dict[str, Any]:
    rows = {
        v["name"]: (
            v["offline"]["per_split"].get("seen", {}).get("accuracy"),
            v["offline"]["web_accuracy"],
        )
        for v in variants
    }
    best_lang = max(rows, key=lambda n: rows[n][1] or 0.0)
    best_act = max(rows, key=lambda n: rows[n][0] or 0.0)
    return {
        "action_accuracy": {n: r[0] for n, r in rows.items()},
        "language_retention": {n: r[1] for n, r in rows.items()},
        "answer": (
            f"held-out action accuracy is highest with {best_act} "
            f"({pct(rows[best_act][0])}); language retention (web VQA accuracy) is highest "
            f"with {best_lang} ({pct(rows[best_lang][1])})"
        ),
    }


def _stage_ablation(
    exp: ExperimentConfig, variants: list[dict], comparisons: dict
) -> dict[str, Any]:
    parts = []
    for v in variants:
        s, p = v["stability"], pooled(v, "seen")
        parts.append(
            f"{v['name']}: seen success {pct(p['rate'] if p else None)}, "
            f"{s['loss_spikes']} loss spikes, grad-norm variance "
            f"{_num(s['grad_norm_var'])}"
        )
    others = [v["name"] for v in variants if v["name"] != exp.baseline]
    verdicts = [_pair(comparisons, n)["verdict"] for n in others if _pair(comparisons, n)]
    return {
        "stability": {v["name"]: v["stability"] for v in variants},
        "answer": "; ".join(parts) + (". " + " ".join(verdicts) if verdicts else ""),
    }


_HPARAM_CAVEAT = {
    "significant": "",
    "not significant": "; not significant: more trials are needed to tell",
    "borderline": "; borderline (the interval and the test disagree): more trials are needed",
}


def _hparam_sensitivity(variants: list[dict], comparisons: dict) -> dict[str, Any]:
    by_name = {v["name"]: v for v in variants}
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
                "confidence": d["confidence"],
                "interval": d["method"],
                "p_value": pair["p_value"],
                "significant": pair["decision"] == "significant",
                "decision": pair["decision"],
            }
    out: dict[str, Any] = {"effects": effects}
    if effects:
        top = max(effects, key=lambda g: abs(effects[g]["effect"]))
        e = effects[top]
        out["most_sensitive"] = top
        out["answer"] = (
            f"{top} moves success most: {e['variant']} changes it by "
            f"{100 * e['effect']:+.1f} points ({100 * e['confidence']:.4g}% "
            f"{'paired ' if e['interval'] == 'newcombe-paired' else ''}CI "
            f"{100 * e['lower']:+.1f} to {100 * e['upper']:+.1f}), p = {e['p_value']:.3g}"
            + _HPARAM_CAVEAT[e["decision"]]
        )
    return out
