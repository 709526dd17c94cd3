"""Success-rate figures: forest plots of intervals, and per-variant rates and bars.

Plain numbers in, one PNG out (see `vla_eval.plots`). Must never import torch or any
vla-eval module above `vla_eval.formatting`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes

from vla_eval.formatting import pct
from vla_eval.plots.common import save


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
    _forest_entries(ax, labels, groups, (est, lo, hi), notes, row_y, offset, colour, first_summary)
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
    return save(fig, path)


def _forest_entries(
    ax: Axes,
    labels: Sequence[str],
    groups: Sequence[str],
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray],
    notes: Sequence[str] | None,
    row_y: Mapping[str, float],
    offset: Mapping[str, float],
    colour: Mapping[str, object],
    first_summary: int,
) -> None:
    """One point and interval bar per entry; summary rows (from `first_summary`) in bold diamonds."""
    est, lo, hi = bounds
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
    return save(fig, path)


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
                pct(v),
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
    return save(fig, path)
