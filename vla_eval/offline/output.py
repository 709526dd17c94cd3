"""The ``vla-eval/offline/1`` result: its schema, readable tables and files (JSON and plots).

`format_offline` renders the tables `vla-eval offline` prints (a learning-curve table
for several checkpoints, then the last result in full); `write_offline` writes
``offline.json`` and the PNG figures. Results are plain data, so this module depends on
nothing but the formatting and results helpers (and the plotting module, imported when
writing); it must not import torch, the trainer or any evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vla_eval.actions import ActionTokenizer
from vla_eval.formatting import pct

SCHEMA = "vla-eval/offline/1"
#: Action dimensions drawn in open-loop traces (the ones the built-in world reads).
TRACE_DIMS: tuple[str, ...] = ("dx", "dy", "dyaw", "gripper")


def tokenizer_info(tok: ActionTokenizer) -> dict[str, Any]:
    """The tokenizer's settings for the results (its state without the long bin edges)."""
    state = tok.state_dict()
    state.pop("bin_edges")  # recomputable, and long
    return state


def trace_dims(names: Sequence[str]) -> list[str]:
    """The action dimensions an open-loop plot draws: those of `TRACE_DIMS` the model has,
    else (a model with other dimensions) its first four."""
    preferred = [d for d in TRACE_DIMS if d in names]
    return preferred or list(names[:4])


def format_offline(result: Mapping[str, Any]) -> str:
    """Readable tables of an offline result (the last checkpoint in full, earlier ones in brief)."""
    lines: list[str] = []
    results = result["results"]
    if len(results) > 1:
        lines += _learning_table(results)
        lines.append("")
    last = results[-1]
    m = last["metrics"]
    lines.append(_scored_what(result, last))
    lines.append(_describe_data(result["data"], m, last["tokenizer"]))
    ks = m["within_k"]
    header = (
        f"{'':<16}{'count':>7}{'loss':>8}{'exact':>8}"
        + "".join(f"{'±' + str(k):>8}" for k in ks)
        + f"{'L1':>8}{'MSE':>9}"
    )

    def row(label: str, s: Mapping[str, Any], extra: str = "") -> str:
        cells = [
            f"{label:<16}{s['count']:>7}",
            _num(s["loss"], 8, 3),
            pct(s["accuracy"], none="—", width=8),
        ]
        cells += [pct(s[f"within_{k}"], none="—", width=8) for k in ks]
        cells += [_num(s["l1"], 8, 4), _num(s["mse"], 9, 5)]
        return "".join(cells) + extra

    lines += ["", header, row("overall", m["overall"])]
    lines += [row(f"  {s}", v) for s, v in m["per_split"].items()]
    if len(m["per_task_split"]) > 1:
        lines += ["", "per task and split"]
        lines += [row(f"  {e['task']}/{e['split']}", e) for e in m["per_task_split"]]
    lines += ["", "per action dimension (disp: dispersion ratio)", header + f"{'disp':>7}"]
    for name, s in m["per_dim"].items():
        lines.append(row(f"  {name}", s, _num(m["dispersion_ratio"][name], 7, 2)))
    if m["chunk"] > 1:
        lines += ["", "per chunk step"]
        lines += [row(f"  t+{j}", s) for j, s in enumerate(m["per_chunk_step"])]
    lines.append("")
    lines.append(_dispersion_note(m["dispersion_ratio"]))
    if "web" in m:
        lines.append(_web_sentence(m["web"]))
    return "\n".join(lines)


def write_offline(result: Mapping[str, Any], out_dir: str | Any) -> list[Any]:
    """Write ``offline.json`` and the PNG plots into ``out_dir``; return the paths written.

    Plots: ``dimension_accuracy.png`` (exact and within ±k per action dimension, per
    split), ``open_loop.png`` (predicted vs demonstrated actions over a few held-out
    episodes, checkpoints only) and, with several checkpoints, ``learning_curve.png``.
    """
    from vla_eval.locking import output_lock

    with output_lock(out_dir, "offline report directory", directory=True):
        return _write_offline(result, Path(out_dir))


def _write_offline(result: Mapping[str, Any], out: Path) -> list[Any]:
    from vla_eval import plots
    from vla_eval.results import write_json

    written = [write_json(out / "offline.json", result)]
    last = result["results"][-1]
    m = last["metrics"]
    panels: dict[str, dict[str, list[float | None]]] = {}
    intervals: dict[str, dict[str, tuple[list, list]]] = {}
    sources = last["by_split"] if len(last["by_split"]) > 1 else {"all": m}
    for split, detail in sources.items():
        per_dim = detail["per_dim"]
        keys = {"exact": "accuracy", **{f"within ±{k}": f"within_{k}" for k in m["within_k"]}}
        panels[split] = {name: [v[key] for v in per_dim.values()] for name, key in keys.items()}
        intervals[split] = {
            name: wilson_bounds(
                [v[key] for v in per_dim.values()], [v.get("count") for v in per_dim.values()]
            )
            for name, key in keys.items()
        }
    title = _plot_title(result, last)
    held_out = result["kind"] == "checkpoints"
    what = "Held-out action-bin accuracy" if held_out else "Action-bin accuracy"
    written.append(
        plots.dimension_accuracy_plot(
            out / "dimension_accuracy.png",
            list(m["per_dim"]),
            panels,
            title=f"{what} per dimension — {title}",
            intervals=intervals,
            caption=WILSON_CAPTION,
        )
    )
    if last["traces"]:
        written.append(
            plots.action_traces_plot(
                out / "open_loop.png",
                last["traces"],
                trace_dims(last["traces"][0]["dims"]),
                title=f"Open-loop actions on held-out episodes — {title}",
            )
        )
    if len(result["results"]) > 1:
        written.append(_learning_curve(plots, result["results"], out / "learning_curve.png"))
    figures = [p for p in written if Path(p).suffix == ".png"]
    written.append(write_offline_html(result, out / "report.html", figures))
    return written


#: Captions of the offline figures in report.html.
FIGURE_CAPTIONS = {
    "dimension_accuracy.png": "Exact and within-±k bin accuracy per action dimension, per "
    "split, with 95% Wilson intervals.",
    "open_loop.png": "Predicted (first action of each chunk) against demonstrated actions "
    "on held-out episodes.",
    "learning_curve.png": "Held-out metrics per checkpoint; bands: 95% Wilson intervals.",
}


def write_offline_html(result: Mapping[str, Any], path: Path, figures: Sequence[Any]) -> Path:
    """report.html of an offline result: its tables, the figures and the provenance."""
    from vla_eval.report.html import Section, figures_section, provenance_section, table, write_html
    from vla_eval.report.html.page import esc

    last = result["results"][-1]
    m = last["metrics"]
    ks = m["within_k"]
    header = ["", "count", "loss (nats)", "exact", *(f"±{k}" for k in ks), "L1", "MSE"]

    def row(label: str, v: Mapping[str, Any]) -> list[str]:
        cells = [
            label,
            f"{v['count']:,}",
            _num(v["loss"], 0, 3).strip(),
            pct(v["accuracy"], none="—"),
        ]
        cells += [pct(v[f"within_{k}"], none="—") for k in ks]
        return [*cells, _num(v["l1"], 0, 4).strip(), _num(v["mse"], 0, 5).strip()]

    numeric = range(1, len(header))
    rows = [row("overall", m["overall"])] + [row(s, v) for s, v in m["per_split"].items()]
    rows += [row(f"{e['task']} / {e['split']}", e) for e in m["per_task_split"]]
    dims = [
        [*row(name, v), _num(m["dispersion_ratio"][name], 0, 2).strip()]
        for name, v in m["per_dim"].items()
    ]
    about = _describe_data(result["data"], m, last["tokenizer"]).replace("\n", "; ")
    sections = [
        Section(
            "Held-out metrics",
            f"<p>{esc(_scored_what(result, last))}</p><p>{esc(about)}</p>"
            + table(header, rows, numeric=numeric, anchor="offline-table")
            + f"<p>{esc(_dispersion_note(m['dispersion_ratio']))}</p>"
            + (f"<p>{esc(_web_sentence(m['web']))}</p>" if "web" in m else ""),
        ),
        Section(
            "Per action dimension",
            table([*header, "dispersion"], dims, numeric=range(1, len(header) + 1)),
        ),
    ]
    if len(result["results"]) > 1:
        sections.append(
            Section(
                "Learning curve",
                f"<pre>{esc(chr(10).join(_learning_table(result['results'])))}</pre>",
            )
        )
    return write_html(
        path,
        f"Offline evaluation: {_plot_title(result, last)}",
        *sections,
        figures_section(figures, FIGURE_CAPTIONS),
        provenance_section(result.get("provenance")),
    )


def _scored_what(result: Mapping[str, Any], last: Mapping[str, Any]) -> str:
    if result["kind"] == "checkpoints":
        run = f", run {last['run']}" if last.get("run") else ""
        return f"checkpoint {last['checkpoint']} (step {last['step']}, stage {last['stage']}{run})"
    return f"predictions {last['source']}"


def _web_sentence(w: Mapping[str, Any]) -> str:
    return (
        f"web VQA (language retention): loss {w['loss']:.3f}, answer accuracy "
        f"{100 * w['accuracy']:.1f}% over {w['count']} questions"
    )


#: What the error bars of the offline figures are.
WILSON_CAPTION = (
    "Error bars: 95% Wilson intervals over the scored entries (chunk steps x dimensions, "
    "counted as independent, so narrower than episode-level uncertainty)."
)


def wilson_bounds(
    rates: Sequence[float | None], counts: Sequence[int | None]
) -> tuple[list[float | None], list[float | None]]:
    """95% Wilson (lower, upper) of each measured share, from the share and its count.

    A share without a count (or with none scored) has no interval: both bounds are None.

    >>> [[round(b, 4) for b in side] for side in wilson_bounds([0.85], [20])]
    [[0.6396], [0.9476]]
    """
    from vla_eval.stats.intervals import binomial_interval

    lower: list[float | None] = []
    upper: list[float | None] = []
    for rate, n in zip(rates, counts, strict=True):
        if rate is None or not n:
            lower.append(None)
            upper.append(None)
            continue
        ci = binomial_interval(min(max(round(rate * n), 0), n), n)
        lower.append(ci.lower)
        upper.append(ci.upper)
    return lower, upper


def _learning_curve(plots: Any, results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """``learning_curve.png``: held-out loss, accuracy, L1 (and web accuracy) over the steps."""
    ordered = sorted(results, key=lambda r: r.get("step", 0))
    steps = [r.get("step", i) for i, r in enumerate(ordered)]
    series: dict[str, dict[str, list[float | None]]] = {
        "action-token loss": {},
        "exact bin accuracy": {},
        "L1 (action units)": {},
    }
    bands: dict[str, dict[str, tuple[list, list]]] = {"exact bin accuracy": {}}
    for s in ordered[-1]["metrics"]["per_split"]:
        cells = [r["metrics"]["per_split"].get(s, {}) for r in ordered]
        for label, key in zip(series, ("loss", "accuracy", "l1"), strict=True):
            series[label][s] = [c.get(key) for c in cells]
        bands["exact bin accuracy"][s] = wilson_bounds(
            [c.get("accuracy") for c in cells], [c.get("count") for c in cells]
        )
    if all("web" in r["metrics"] for r in ordered):
        web = [r["metrics"]["web"] for r in ordered]
        name = "web VQA answer accuracy (language retention)"
        series[name] = {"web": [w["accuracy"] for w in web]}
        bands[name] = {
            "web": wilson_bounds([w["accuracy"] for w in web], [w["count"] for w in web])
        }
    # The trainer checkpoints at every stage's end, so a stage starts after the last
    # checkpoint of the previous one: mark that step with the new stage's name.
    marks = [
        (float(prev["step"]), f"{r['stage']} →")
        for prev, r in zip([None, *ordered[:-1]], ordered, strict=True)
        if prev is not None and r.get("stage") != prev.get("stage")
    ]
    run = ordered[-1].get("run")
    return plots.learning_curve_plot(
        path,
        steps,
        series,
        title="Held-out metrics over training" + (f" — {run}" if run else ""),
        marks=marks,
        bands=bands,
        caption="Bands: 95% Wilson intervals over the scored entries (chunk steps x "
        "dimensions, counted as independent) and over the web VQA questions.",
    )


# --- table helpers ---------------------------------------------------------------------------


def _num(v: float | None, width: int, digits: int) -> str:
    return f"{'—':>{width}}" if v is None else f"{v:>{width}.{digits}f}"


def _describe_data(data: Mapping[str, Any], m: Mapping[str, Any], tok: Mapping[str, Any]) -> str:
    binning = f"{tok['n_bins']} {tok['scheme']} bins over [{tok['low']:g}, {tok['high']:g}]"
    shape = f"chunks of {m['chunk']} steps x {m['action_dim']} dims"
    if data["kind"] == "predictions":
        return f"{data['samples']} samples, {shape}; {binning}"
    counts = ", ".join(
        f"{s} {data['samples'][s]} samples / {data['episodes'][s]} episodes" for s in data["splits"]
    )
    if data["kind"] == "built-in":
        where = (
            f"built-in world, {data['per_task']} episodes per task and split, seed {data['seed']}"
        )
    else:
        where = str(data["path"])
    web = f"; {data['web_examples']} web VQA questions" if data.get("web_examples") else ""
    return f"held-out data: {where}\n  {counts}; {shape}; {binning}{web}"


def _dispersion_note(ratios: Mapping[str, float | None]) -> str:
    known = {k: v for k, v in ratios.items() if v is not None}
    if not known:
        return "dispersion ratio std(pred)/std(target): undefined (constant targets)"
    low = [k for k, v in known.items() if v < 0.5]
    text = "dispersion ratio std(pred)/std(target): " + ", ".join(
        f"{k} {v:.2f}" for k, v in known.items()
    )
    if low:
        text += f" — below 0.5 on {', '.join(low)}: predictions barely vary (collapse signal)"
    return text


def _learning_table(results: Sequence[Mapping[str, Any]]) -> list[str]:
    splits = list(results[-1]["metrics"]["per_split"])
    head = f"{'step':>7} {'stage':<12}" + "".join(
        f"{s + ' loss':>13}{s + ' acc':>12}{s + ' L1':>11}" for s in splits
    )
    has_web = all("web" in r["metrics"] for r in results)
    head += f"{'web acc':>9}" if has_web else ""
    lines = ["learning curve (held-out)", head]
    for r in sorted(results, key=lambda r: r.get("step", 0)):
        ps = r["metrics"]["per_split"]
        cells = f"{r.get('step', ''):>7} {r.get('stage', '')!s:<12}"
        for s in splits:
            v = ps.get(s, {})
            cells += _num(v.get("loss"), 13, 3) + pct(v.get("accuracy"), none="—", width=12)
            cells += _num(v.get("l1"), 11, 4)
        if has_web:
            cells += pct(r["metrics"]["web"]["accuracy"], none="—", width=9)
        lines.append(cells)
    return lines


def _plot_title(result: Mapping[str, Any], last: Mapping[str, Any]) -> str:
    if result["kind"] == "checkpoints":
        run = f"{last['run']} " if last.get("run") else ""
        return f"{run}step {last['step']}"
    return Path(last["source"]).name
