"""Figures: seaborn/matplotlib PNGs for reports, comparisons and training runs.

Every function here takes plain numbers (no vla-eval objects), writes one PNG and
returns its path. matplotlib runs on its non-interactive Agg backend, so figures
render on machines without a display. Only commands that draw import this module;
it imports seaborn and matplotlib at load time and must never import torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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
