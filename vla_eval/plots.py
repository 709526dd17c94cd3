"""Figures: seaborn/matplotlib PNGs for reports, comparisons and training runs.

Every function here takes plain numbers (no vla-eval objects), writes one PNG and
returns its path. matplotlib runs on its non-interactive Agg backend, so figures
render on machines without a display. Only commands that draw import this module;
it imports seaborn and matplotlib at load time and must never import torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def forest_plot(
    path: str | os.PathLike[str],
    labels: Sequence[str],
    groups: Sequence[str],
    estimate: Sequence[float],
    lower: Sequence[float],
    upper: Sequence[float],
    notes: Sequence[str] | None = None,
    title: str = "Success rate",
    xlabel: str = "success rate",
    group_title: str = "split",
    summary_rows: int = 0,
) -> Path:
    """Forest plot: one row per label, a point and a horizontal interval bar per group.

    Args:
        path: the PNG to write.
        labels: (rows,) the row label of each entry (e.g. the task); entries sharing
            a label share a row band, offset vertically by group.
        groups: (rows,) the colour group of each entry (e.g. the split).
        estimate, lower, upper: (rows,) point estimate and interval bounds in [0, 1].
        notes: (rows,) optional text printed at the right of each bar (e.g. "17/20").
        title: the figure title.
        xlabel: the x axis label.
        group_title: legend title.
        summary_rows: how many of the *last* distinct labels are summaries (e.g.
            pooled rates); they are set off by a line and drawn with diamonds.

    Returns:
        The written path.
    """
    est = np.asarray(estimate, dtype=float)
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    row_names = list(dict.fromkeys(labels))
    group_names = list(dict.fromkeys(groups))
    n_rows, n_groups = len(row_names), len(group_names)
    palette = sns.color_palette("colorblind", n_colors=max(n_groups, 3))
    colour = {g: palette[i] for i, g in enumerate(group_names)}
    band = 0.5  # fraction of a row the groups spread over
    offset = {
        g: (0.0 if n_groups == 1 else band * (i / (n_groups - 1) - 0.5))
        for i, g in enumerate(group_names)
    }
    row_y = {name: float(i) for i, name in enumerate(row_names)}

    sns.set_theme(style="whitegrid", context="notebook")
    height = 1.4 + n_rows * (0.35 + 0.22 * min(n_groups, 4))
    fig, ax = plt.subplots(figsize=(8.5, max(2.8, height)))
    # Shade every other row band so each label's bars read as one block.
    for y in row_y.values():
        if int(y) % 2 == 0:
            ax.axhspan(y - 0.5, y + 0.5, color="0.94", zorder=0, linewidth=0)
    ax.grid(axis="y", visible=False)
    first_summary = n_rows - summary_rows
    drawn: set[str] = set()
    for i, (label, group) in enumerate(zip(labels, groups, strict=True)):
        y = row_y[label] + offset[group]
        summary = row_y[label] >= first_summary
        ax.errorbar(
            est[i],
            y,
            xerr=[[est[i] - lo[i]], [hi[i] - est[i]]],
            fmt="D" if summary else "o",
            markersize=7 if summary else 5.5,
            color=colour[group],
            ecolor=colour[group],
            elinewidth=2.4 if summary else 1.8,
            capsize=3,
            label=group if group not in drawn else None,
        )
        drawn.add(group)
        if notes is not None:
            ax.annotate(
                notes[i],
                xy=(1.02, y),
                xycoords=("axes fraction", "data"),
                va="center",
                fontsize=8,
                color=colour[group],
            )
    if 0 < summary_rows < n_rows:
        ax.axhline(first_summary - 0.5, color="0.35", linewidth=0.9)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(row_names)
    for tick, name in zip(ax.get_yticklabels(), row_names, strict=True):
        if row_y[name] >= first_summary:
            tick.set_fontweight("bold")
    ax.set_ylim(n_rows - 0.5, -0.5)  # first row at the top
    ax.set_xlim(-0.02, 1.02)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left", fontsize=12)
    if n_groups > 1:
        ax.legend(
            title=group_title,
            loc="upper left",
            bbox_to_anchor=(1.13, 1.0),
            frameon=False,
        )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def _save(fig: matplotlib.figure.Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def dimension_accuracy_plot(
    path: str | os.PathLike[str],
    dims: Sequence[str],
    panels: Mapping[str, Mapping[str, Sequence[float | None]]],
    title: str = "Action-bin accuracy per dimension",
) -> Path:
    """Grouped bars of accuracy per action dimension: exact, then within ±k bins.

    Args:
        path: the PNG to write.
        dims: (D,) names of the action dimensions (the x axis).
        panels: one panel per entry (e.g. per split): ``{panel: {series: (D,) values
            in [0, 1] or None}}``; series are drawn side by side in the given order
            (e.g. "exact", "within ±1", ...). None draws no bar.
        title: the figure title.

    Returns:
        The written path.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    names = list(panels)
    series = list(dict.fromkeys(s for p in panels.values() for s in p))
    palette = sns.color_palette("mako_r", n_colors=len(series) + 1)[1:]
    n_dims = len(dims)
    fig, axes = plt.subplots(
        len(names),
        1,
        figsize=(max(7.5, 1.1 * n_dims + 2.5), 2.9 * len(names) + 0.6),
        sharex=True,
        squeeze=False,
    )
    width = 0.8 / max(len(series), 1)
    x = np.arange(n_dims)
    for ax, name in zip(axes[:, 0], names, strict=True):
        for j, s in enumerate(series):
            values = panels[name].get(s, [None] * n_dims)
            heights = np.array([np.nan if v is None else v for v in values], dtype=float)
            ax.bar(
                x + (j - (len(series) - 1) / 2) * width,
                heights,
                width * 0.95,
                color=palette[j],
                label=s,
            )
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
        ax.set_ylabel("held-out accuracy")
        ax.set_title(name, loc="left", fontsize=11)
        ax.grid(axis="x", visible=False)
    axes[-1, 0].set_xticks(x)
    axes[-1, 0].set_xticklabels(dims)
    axes[-1, 0].set_xlabel("action dimension")
    axes[0, 0].legend(
        title="predicted bin", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def action_traces_plot(
    path: str | os.PathLike[str],
    traces: Sequence[Mapping[str, object]],
    dims: Sequence[str],
    title: str = "Open-loop actions on held-out episodes",
) -> Path:
    """Predicted vs demonstrated actions over time: one row per episode, one column per dimension.

    Args:
        path: the PNG to write.
        traces: per episode a mapping with ``dims`` (names of all D dimensions),
            ``step`` (T,), ``true`` (T, D) demonstrated actions and ``pred`` (T, D)
            predicted actions (the first action of the chunk predicted at each step),
            plus ``task``, ``split`` and ``instruction`` for the row label.
        dims: which dimensions to draw, by name.
        title: the figure title.

    Returns:
        The written path.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    colours = sns.color_palette("colorblind", n_colors=3)
    rows = max(len(traces), 1)
    fig = plt.figure(figsize=(3.3 * len(dims), 2.55 * rows + 0.7), layout="constrained")
    # One sub-figure per episode, so each row carries its own heading (task, split, instruction).
    subfigs = np.atleast_1d(fig.subfigures(rows, 1))
    handles: list = []
    for subfig, trace in zip(subfigs, traces, strict=False):
        names = list(trace["dims"])  # type: ignore[arg-type]
        steps = np.asarray(trace["step"])
        true = np.asarray(trace["true"], dtype=float)
        pred = np.asarray(trace["pred"], dtype=float)
        axes = np.atleast_1d(subfig.subplots(1, len(dims)))
        for ax, dim in zip(axes, dims, strict=True):
            if dim not in names:
                ax.set_visible(False)
                continue
            i = names.index(dim)
            ax.axhline(0, color="0.6", lw=0.8, zorder=0)
            ax.plot(steps, true[:, i], "-o", color=colours[0], lw=2, ms=4, label="demonstration")
            ax.plot(steps, pred[:, i], "--s", color=colours[1], lw=1.6, ms=3.5, label="predicted")
            ax.set_ylim(-1.15, 1.15)
            ax.set_title(dim, fontsize=10)
            ax.set_xlabel("step", fontsize=9)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.tick_params(labelsize=8)
            handles = handles or ax.get_legend_handles_labels()[0]
        instruction = trace.get("instruction")
        heading = f"{trace.get('task')} / {trace.get('split')}"
        if instruction:
            heading += f":  \u201c{instruction}\u201d"
        subfig.suptitle(heading, x=0.01, ha="left", fontsize=10, fontweight="bold")
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    if handles:
        fig.legend(
            handles,
            ["demonstration", "predicted (first action of each chunk)"],
            loc="outside upper right",
            ncol=2,
            frameon=False,
            fontsize=9,
        )
    return _save(fig, path)


def learning_curve_plot(
    path: str | os.PathLike[str],
    steps: Sequence[int],
    series: Mapping[str, Mapping[str, Sequence[float | None]]],
    title: str = "Held-out metrics over training",
    marks: Sequence[tuple[float, str]] = (),
) -> Path:
    """Metrics against training step: one panel per metric, one line per split.

    Args:
        path: the PNG to write.
        steps: (C,) training step of each checkpoint, ascending.
        series: ``{metric: {line: (C,) values or None}}``; a metric whose name
            contains "accuracy" is drawn in percent on [0, 100%].
        title: the figure title.
        marks: (step, label) pairs drawn as dotted vertical lines (e.g. the last
            checkpoint before a training stage begins, labelled with that stage).

    Returns:
        The written path.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    metrics = list(series)
    lines = list(dict.fromkeys(line for m in series.values() for line in m))
    colours = sns.color_palette("colorblind", n_colors=max(len(lines), 3))
    palette = dict(zip(lines, colours, strict=False))
    cols = min(len(metrics), 2)
    nrows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.3 * nrows + 0.5), squeeze=False)
    x = np.asarray(steps, dtype=float)
    legend_drawn = False
    for k, metric in enumerate(metrics):
        ax = axes.flat[k]
        for line, values in series[metric].items():
            y = np.array([np.nan if v is None else v for v in values], dtype=float)
            ax.plot(x, y, "-o", color=palette[line], lw=1.8, ms=4.5, label=line)
        if "accuracy" in metric:
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
        for at, label in marks:
            ax.axvline(at, color="0.45", lw=0.9, ls=":", zorder=0)
            # Labels near the right edge go on the line's left so they stay inside the axes.
            right = x.size > 1 and at > x.max() - 0.25 * (x.max() - x.min())
            ax.annotate(
                label,
                xy=(at, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(-2 if right else 2, -2),
                textcoords="offset points",
                fontsize=7.5,
                color="0.35",
                va="top",
                ha="right" if right else "left",
            )
        ax.set_title(metric, loc="left", fontsize=11)
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if len(series[metric]) > 1 and not legend_drawn:
            ax.legend(frameon=False, fontsize=9, loc="best")
            legend_drawn = True
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def training_curves_plot(
    metrics_path: str | os.PathLike[str],
    path: str | os.PathLike[str],
    smooth: int = 25,
    title: str | None = None,
) -> Path:
    """A training run's metrics.jsonl as four panels: losses, per-task loss, held-out, LR/grad norm.

    Training curves are running means over `smooth` steps; held-out points are drawn
    where evaluations ran; dotted lines mark where each training stage begins.
    """
    import json

    rows = []
    for line in Path(metrics_path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break

    def num(v: object) -> float:
        return float(v) if isinstance(v, (int, float)) else np.nan

    def run_mean(y: np.ndarray) -> np.ndarray:
        if y.size < smooth:
            return y
        ok = np.isfinite(y)
        c = np.convolve(np.where(ok, y, 0), np.ones(smooth), "valid")
        n = np.convolve(ok.astype(float), np.ones(smooth), "valid")
        mean = np.where(n > 0, c / np.maximum(n, 1), np.nan)
        return np.concatenate([np.full(smooth - 1, np.nan), mean])

    sns.set_theme(style="whitegrid", context="notebook")
    step = np.array([r["step"] for r in rows], dtype=float)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), squeeze=False)
    ax = axes[0, 0]
    for key, label in (("robot_loss", "robot (action tokens)"), ("train_web_loss", "web (VQA)")):
        y = np.array([num(r.get(key)) for r in rows])
        if np.isfinite(y).any():
            ax.plot(step, run_mean(y), lw=1.6, label=label)
    ax.set_title("training loss", loc="left")
    ax.legend(frameon=False, fontsize=9)
    ax = axes[0, 1]
    tasks = sorted({t for r in rows for t in r.get("loss_per_task", {})})
    for task in tasks:
        y = np.array([num(r.get("loss_per_task", {}).get(task)) for r in rows])
        ax.plot(step, run_mean(y), lw=1.4, label=task)
    ax.set_title("action loss per task", loc="left")
    if tasks:
        ax.legend(frameon=False, fontsize=9)
    ax = axes[1, 0]
    evals = [r for r in rows if "heldout" in r]
    for split in sorted({s for r in evals for s in r["heldout"]}):
        ax.plot(
            [r["step"] for r in evals],
            [num(r["heldout"][split].get("loss")) for r in evals],
            "-o",
            ms=4,
            label=f"held-out {split}",
        )
    if evals:
        ax.plot(
            [r["step"] for r in evals],
            [num(r.get("web_loss")) for r in evals],
            "--s",
            ms=4,
            label="held-out web VQA",
        )
        ax.legend(frameon=False, fontsize=9)
    ax.set_title("held-out loss", loc="left")
    ax = axes[1, 1]
    ax.plot(step, [num(r.get("lr")) for r in rows], color="0.3", lw=1.4, label="learning rate")
    ax.set_yscale("log")
    ax.set_title("learning rate (log) and gradient norm", loc="left")
    twin = ax.twinx()
    twin.plot(
        step,
        run_mean(np.array([num(r.get("grad_norm")) for r in rows])),
        color="C3",
        lw=1.2,
        label="grad norm",
    )
    twin.grid(False)
    twin.set_ylabel("grad norm (before clipping)", color="C3")
    stages = [
        (r["step"], r["stage"])
        for i, r in enumerate(rows)
        if i == 0 or r.get("stage") != rows[i - 1].get("stage")
    ]
    for a in axes.flat:
        a.set_xlabel("training step")
        a.set_xlim(0, max(step.max() if step.size else 1, 1))
        for at, name in stages:
            a.axvline(at, color="0.5", lw=0.8, ls=":", zorder=0)
            a.annotate(
                name,
                xy=(at, 0.98),
                xycoords=("data", "axes fraction"),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7.5,
                color="0.35",
                va="top",
                rotation=90,
            )
    name = title or f"Training run: {Path(metrics_path).parent.name}"
    fig.suptitle(name, x=0.01, ha="left", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def variant_task_plot(
    path: str | os.PathLike[str],
    rows: Sequence[tuple[str, str, str | None, float, float, float]],
    title: str = "Success per task",
) -> Path:
    """Success rate per task for each variant (one panel per split), with Wilson bars.

    Args:
        path: the PNG to write.
        rows: (variant, task, split, rate, lower, upper) entries.
        title: the figure title.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    splits = list(dict.fromkeys(r[2] for r in rows))
    variants = list(dict.fromkeys(r[0] for r in rows))
    tasks = list(dict.fromkeys(r[1] for r in rows))
    colours = dict(
        zip(tasks, sns.color_palette("colorblind", n_colors=max(len(tasks), 3)), strict=False)
    )
    fig, axes = plt.subplots(
        1,
        len(splits),
        figsize=(max(5.0, 1.3 * len(variants) + 2.5) * len(splits) / 1.4, 4.2),
        squeeze=False,
        sharey=True,
    )
    width = 0.8 / max(len(tasks), 1)
    x = np.arange(len(variants))
    for ax, split in zip(axes.flat, splits, strict=True):
        for k, task in enumerate(tasks):
            sel = {r[0]: r for r in rows if r[1] == task and r[2] == split}
            rate = np.array([sel[v][3] if v in sel else np.nan for v in variants])
            lo = np.array([sel[v][4] if v in sel else np.nan for v in variants])
            hi = np.array([sel[v][5] if v in sel else np.nan for v in variants])
            pos = x - 0.4 + width * (k + 0.5)
            ax.errorbar(
                pos,
                rate,
                yerr=[rate - lo, hi - rate],
                fmt="o",
                ms=5,
                capsize=2.5,
                color=colours[task],
                label=task,
            )
        ax.set_xticks(x, variants, rotation=20 if len(variants) > 4 else 0)
        ax.set_ylim(-0.02, 1.02)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
        ax.set_title(f"{split} split" if split else "", loc="left", fontsize=11)
    axes.flat[0].set_ylabel("success rate (95% Wilson CI)")
    axes.flat[-1].legend(title="task", frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def variant_bars_plot(
    path: str | os.PathLike[str],
    variants: Sequence[str],
    metrics: Mapping[str, Sequence[float | None]],
    title: str = "Offline metrics per variant",
) -> Path:
    """One bar panel per metric (fractions in [0, 1]), one bar per variant."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4.2 * len(metrics) + 0.6 * len(variants), 3.8), squeeze=False
    )
    colours = sns.color_palette("colorblind", n_colors=max(len(variants), 3))
    for ax, (name, values) in zip(axes.flat, metrics.items(), strict=True):
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        bars = ax.bar(np.arange(len(variants)), np.nan_to_num(y), color=colours[: len(variants)])
        for bar, v in zip(bars, y, strict=True):
            ax.annotate(
                "n/a" if np.isnan(v) else f"{100 * v:.1f}%",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8.5,
                xytext=(0, 2),
                textcoords="offset points",
            )
        ax.set_xticks(np.arange(len(variants)), variants, rotation=20 if len(variants) > 4 else 0)
        ax.set_ylim(0, 1.08)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
        ax.set_title(name, loc="left", fontsize=10.5)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)
