"""An experiment's figures and its experiment.md.

Reads the result dictionary `run` builds; imports the plotting module only to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_eval.experiment.analyse import pooled
from vla_eval.formatting import pct
from vla_eval.report.markdown import natural_key


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
    rows = [
        (v["name"], g["task"], g.get("split"), g["rate"], g["lower"], g["upper"])
        for v in result["variants"]
        for g in v["success"]["groups"]
    ]
    rows.sort(key=lambda r: natural_key(r[1]))  # tasks by name, whatever order rollouts ended
    paths.append(
        plots.variant_task_plot(
            out / "success_by_task.png", rows, title=f"{result['experiment']}: success per task"
        )
    )
    paths.append(_offline_bars(plots, result["variants"], out / "offline_by_variant.png"))
    return paths


def _offline_bars(plots: Any, variants: list[dict[str, Any]], path: Path) -> Path:
    """Held-out action accuracy and web VQA accuracy per variant, with 95% Wilson bars
    where the number of scored entries or questions is recorded."""
    from vla_eval.offline.output import wilson_bounds

    seen = [v["offline"]["per_split"].get("seen", {}) for v in variants]
    values = {
        "held-out action accuracy (seen)": (
            [s.get("accuracy") for s in seen],
            [s.get("count") for s in seen],
        ),
        "web VQA accuracy (language retention)": (
            [v["offline"]["web_accuracy"] for v in variants],
            [v["offline"].get("web_count") for v in variants],
        ),
    }
    intervals = {}
    for name, (rates, counts) in values.items():
        lo, hi = wilson_bounds(rates, counts)
        intervals[name] = [None if a is None else (a, b) for a, b in zip(lo, hi, strict=True)]
    drawn = any(b is not None for bars in intervals.values() for b in bars)
    return plots.variant_bars_plot(
        path,
        [v["name"] for v in variants],
        {name: rates for name, (rates, _) in values.items()},
        intervals=intervals,
        caption="Error bars: 95% Wilson intervals (action accuracy over scored entries, web "
        "VQA over questions)."
        if drawn
        else "No error bars: this result does not record how many entries and questions "
        "were scored.",
    )


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
    if any("runs" in v for v in result["variants"]):
        lines[-2:-2] = ["Each variant's first training seed; all seeds: *Training seeds*.", ""]
    lines += [_variant_row(v, result["baseline"]) for v in result["variants"]]
    if any("runs" in v for v in result["variants"]):
        lines += _seeds_section(result)
    lines += ["", f"## Against the baseline ({result['baseline']}), paired on seeds", ""]
    if any("runs" in v for v in result["variants"]):
        lines += ["Episode-level comparison of each variant's first training seed.", ""]
    for name, c in result["comparisons"].items():
        lines.append(f"- **{name}**: {c['pairs'][0]['verdict']}")
    lines += ["", "## Figures", ""] + [f"![{p}]({p})" for p in result["figures"]]
    return "\n".join(lines) + "\n"


def _seeds_section(result: dict[str, Any]) -> list[str]:
    """Training seeds: mean and IQM over runs x tasks (two-level bootstrap), the share
    of the spread that is seeds, and the probability of improvement over the baseline."""
    lines = [
        "",
        "## Training seeds",
        "",
        "Every variant trained once per seed; rates over runs x (task, split), 95% intervals "
        "from a two-level bootstrap (training runs, then episodes).",
        "",
        "| variant | runs | mean success (95% CI) | IQM (95% CI) | spread: seeds / episodes "
        f"| P(beats {result['baseline']}) (95% CI) |",
        "|---|---:|---|---|---|---|",
    ]
    for v in result["variants"]:
        r = v["runs"]
        mean, iqm, sp = r["mean"], r["iqm"], r["spread"]
        if sp is None:
            split = "n/a (one run)"
        elif sp["seeds"] + sp["episodes"] == 0:
            split = "none (every run scored the same)"
        else:
            split = f"{pct(sp['seed_share'])} seeds / {pct(1 - sp['seed_share'])} episodes"
        c = result["comparisons"].get(v["name"])
        poi = "baseline"
        if c is not None:
            p = c["runs"]["probability_of_improvement"]
            poi = f"{p['estimate']:.2f} ({p['lower']:.2f}–{p['upper']:.2f})"
        lines.append(
            f"| {v['name']} | {len(r['seeds'])} | {_ci(mean)} | {_ci(iqm)} | {split} | {poi} |"
        )
    return lines


def _ci(r: dict[str, Any]) -> str:
    return f"{pct(r['estimate'])} ({pct(r['lower'])}–{pct(r['upper'])})"


def _variant_row(v: dict[str, Any], baseline: str) -> str:
    """One row of the variants table: success per split, offline accuracies, stability."""
    cells = []
    for split in ("seen", "unseen"):
        p = pooled(v, split)
        cells.append(
            "n/a"
            if p is None
            else f"{pct(p['rate'])} ({pct(p['lower'])}–{pct(p['upper'])}), "
            f"{p['successes']}/{p['trials']}"
        )
    acc = v["offline"]["per_split"].get("seen", {}).get("accuracy")
    name = v["name"] + (" (baseline)" if v["name"] == baseline else "")
    return (
        f"| {name} | {cells[0]} | {cells[1]} | {pct(acc)} | "
        f"{pct(v['offline']['web_accuracy'])} | {v['stability']['loss_spikes']} | "
        f"{len(v['findings'])} |"
    )


def write_experiment_html(result: dict[str, Any], out: Path) -> Path:
    """report.html: experiment.md as one page (figures embedded), every variant's
    Diagnose findings with their fixes, and the provenance."""
    from vla_eval.report.html import (
        Section,
        findings_section,
        markdown_html,
        provenance_section,
        write_html,
    )

    findings = [
        {**f, "symptom": f"{v['name']}: {f['symptom']}"}
        for v in result["variants"]
        for f in v.get("findings", [])
    ]
    return write_html(
        out / "report.html",
        f"Experiment: {result['experiment']}",
        Section("Results", markdown_html(_without_title(format_markdown(result)), out, 1)),
        findings_section(findings),
        provenance_section(result.get("provenance")),
    )


def _without_title(markdown: str) -> str:
    """The Markdown without its first-level title (the page has its own)."""
    first, _, rest = markdown.partition("\n")
    return rest if first.startswith("# ") else markdown
