"""Success-rate figures: forest plots of intervals, and per-variant rates and bars.

Plain numbers in, one PNG out (see `vla_eval.plots`). Must never import torch or any
vla-eval module above `vla_eval.formatting`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes

from vla_eval.formatting import pct
from vla_eval.plots.common import save

#: A forest plot wraps into side-by-side facets beyond this many rows per facet.
MAX_FACET_ROWS = 20
#: At most this many facets side by side; more rows make each facet taller instead.
MAX_FACETS = 3


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
    caption: str | None = None,
) -> Path:
    """Forest plot: one row per label, a point and a horizontal interval bar per group.

    Rows are drawn in the order of their first entry (sort the entries first). Beyond
    `MAX_FACET_ROWS` rows the plot wraps into up to `MAX_FACETS` side-by-side facets,
    each with its own x axis, so 50 tasks stay readable; summary rows stay together
    at the end of the last facet.

    Args:
        path: the PNG to write.
        labels: (rows,) the row label of each entry (e.g. the task); entries sharing
            a label share a row band, offset vertically by group.
        groups: (rows,) the colour group of each entry (e.g. the split).
        estimate, lower, upper: (rows,) point estimate and interval bounds in [0, 1].
        notes: (rows,) optional text printed at the right of each bar (e.g. "17/20").
        title: the figure title.
        xlabel: the x axis label (repeated under every facet).
        group_title: legend title.
        summary_rows: how many of the *last* distinct labels are summaries (e.g.
            pooled rates, the mean of task rates); they are set off by a line and
            drawn with diamonds.
        caption: a line under the figure (what the bars are, how rows are ordered).

    Returns:
        The written path.
    """
    bounds = tuple(np.asarray(v, dtype=float) for v in (estimate, lower, upper))
    row_names = list(dict.fromkeys(labels))
    group_names = list(dict.fromkeys(groups))
    facets = facet_rows(row_names, summary_rows)
    colour, offset = _group_styles(group_names)
    n_groups = len(group_names)
    sns.set_theme(style="whitegrid", context="notebook")
    tall = max(len(f) for f in facets)
    per_row = 0.3 + 0.16 * min(n_groups, 4) if len(facets) > 1 else 0.35 + 0.22 * min(n_groups, 4)
    width = {1: 8.5, 2: 11.0}.get(len(facets), 4.4 * len(facets))  # inches, at 150 dpi
    fig, axes = plt.subplots(
        1,
        len(facets),
        figsize=(width, max(2.8, 1.6 + tall * per_row)),
        squeeze=False,
        layout="constrained",
    )
    first_summary = row_names[len(row_names) - summary_rows] if summary_rows else None
    for ax, names in zip(axes[0], facets, strict=True):
        row_y = {name: float(i) for i, name in enumerate(names)}
        summaries = names.index(first_summary) if first_summary in names else len(names)
        _facet_axes(ax, names, row_y, summaries, xlabel)
        keep = [i for i, label in enumerate(labels) if label in row_y]
        _forest_entries(
            ax,
            [labels[i] for i in keep],
            [groups[i] for i in keep],
            tuple(b[keep] for b in bounds),
            None if notes is None else [notes[i] for i in keep],
            row_y,
            offset,
            colour,
            summaries,
        )
    _forest_legend(fig, axes[0], n_groups, len(facets), group_title)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    if caption:
        fig.supxlabel(caption, x=0.01, ha="left", fontsize=8.5, color="0.3")
    return save(fig, path)


def _group_styles(names: Sequence[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """Each group's colour (colour-blind palette) and vertical offset within a row."""
    palette = sns.color_palette("colorblind", n_colors=max(len(names), 3))
    spread = 0.5  # fraction of a row the groups spread over
    last = max(len(names) - 1, 1)
    offset = {g: 0.0 if len(names) == 1 else spread * (i / last - 0.5) for i, g in enumerate(names)}
    return {g: palette[i] for i, g in enumerate(names)}, offset


def facet_rows(rows: Sequence[str], summary_rows: int = 0) -> list[list[str]]:
    """Rows cut into facets of about equal height; the last `summary_rows` stay together.

    >>> [len(f) for f in facet_rows([str(i) for i in range(52)], summary_rows=2)]
    [18, 18, 16]
    """
    body, tail = list(rows[: len(rows) - summary_rows]), list(rows[len(rows) - summary_rows :])
    total = len(body) + len(tail)
    n = min(MAX_FACETS, -(-total // MAX_FACET_ROWS)) if total else 1
    size = -(-total // n)
    facets = [body[i : i + size] for i in range(0, len(body), size)] or [[]]
    if len(facets[-1]) + len(tail) > size and len(facets) < n:
        facets.append([])
    facets[-1] += tail
    return facets


def _facet_axes(
    ax: Axes, names: Sequence[str], row_y: Mapping[str, float], summaries: int, xlabel: str
) -> None:
    """One facet's frame: banded rows, labels (summaries in bold), a percent x axis."""
    for y in row_y.values():
        if int(y) % 2 == 0:
            ax.axhspan(y - 0.5, y + 0.5, color="0.94", zorder=0, linewidth=0)
    ax.grid(axis="y", visible=False)
    if 0 < summaries < len(names):
        ax.axhline(summaries - 0.5, color="0.35", linewidth=0.9)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names)
    for i, tick in enumerate(ax.get_yticklabels()):
        if i >= summaries:
            tick.set_fontweight("bold")
    ax.set_ylim(max(len(names), 1) - 0.5, -0.5)  # first row at the top
    ax.set_xlim(-0.02, 1.02)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
    ax.set_xlabel(xlabel)


def _forest_legend(fig: Any, axes: Sequence[Axes], n_groups: int, facets: int, title: str) -> None:
    if n_groups < 2:
        return
    if facets == 1:
        axes[0].legend(title=title, loc="upper left", bbox_to_anchor=(1.13, 1.0), frameon=False)
        return
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title=title, loc="outside upper right", ncol=n_groups, frameon=False)


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
    """One point and interval bar per entry; rows from `first_summary` on are bold diamonds."""
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
    intervals: Mapping[str, Sequence[tuple[float, float] | None]] | None = None,
    caption: str | None = None,
) -> Path:
    """One bar panel per metric (fractions in [0, 1]), one bar per variant.

    Args:
        path: the PNG to write.
        variants: (V,) bar labels.
        metrics: ``{panel title: (V,) values in [0, 1] or None}``.
        title: the figure title.
        intervals: ``{panel title: (V,) (lower, upper) or None}``: error bars.
        caption: a line under the figure (what the error bars are).
    """
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4.2 * len(metrics) + 0.6 * len(variants), 4.2), squeeze=False
    )
    colours = sns.color_palette("colorblind", n_colors=max(len(variants), 3))
    x = np.arange(len(variants))
    for ax, (name, values) in zip(axes.flat, metrics.items(), strict=True):
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.bar(x, np.nan_to_num(y), color=colours[: len(variants)])
        top = y.copy()
        bounds = (intervals or {}).get(name)
        if bounds is not None:
            lo = np.array([np.nan if b is None else b[0] for b in bounds], dtype=float)
            hi = np.array([np.nan if b is None else b[1] for b in bounds], dtype=float)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor="0.15", capsize=4)
            top = np.where(np.isfinite(hi), hi, y)
        for i, v in enumerate(y):
            ax.annotate(
                pct(v),
                (x[i], np.nan_to_num(top[i])),
                ha="center",
                va="bottom",
                fontsize=8.5,
                xytext=(0, 2),
                textcoords="offset points",
            )
        ax.set_xticks(x, variants, rotation=20 if len(variants) > 4 else 0)
        ax.set_ylim(0, 1.12)
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
        ax.set_ylabel("accuracy (%)")
        ax.set_title(name, loc="left", fontsize=10.5)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    if caption:
        fig.supxlabel(caption, x=0.01, ha="left", fontsize=8.5, color="0.3")
    fig.tight_layout()
    return save(fig, path)
