"""Action figures: offline accuracy per action dimension, and predicted vs demonstrated traces.

Plain numbers in, one PNG out (see `vla_eval.plots`). Must never import torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from vla_eval.plots.common import save

#: (lower, upper) bounds, one per bar.
Bounds = tuple[Sequence[float | None], Sequence[float | None]]


def dimension_accuracy_plot(
    path: str | os.PathLike[str],
    dims: Sequence[str],
    panels: Mapping[str, Mapping[str, Sequence[float | None]]],
    title: str = "Action-bin accuracy per dimension",
    intervals: Mapping[str, Mapping[str, Bounds]] | None = None,
    caption: str | None = None,
) -> Path:
    """Grouped bars of accuracy per action dimension: exact, then within ±k bins.

    Args:
        path: the PNG to write.
        dims: (D,) names of the action dimensions (the x axis).
        panels: one panel per entry (e.g. per split): ``{panel: {series: (D,) values
            in [0, 1] or None}}``; series are drawn side by side in the given order
            (e.g. "exact", "within ±1", ...). None draws no bar.
        title: the figure title.
        intervals: ``{panel: {series: ((D,) lower, (D,) upper)}}``: error bars on
            the bars (e.g. 95% Wilson intervals); None bounds draw none.
        caption: a line under the figure (what the error bars are).

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
            heights = _floats(values)
            at = x + (j - (len(series) - 1) / 2) * width
            ax.bar(at, heights, width * 0.95, color=palette[j], label=s)
            bounds = (intervals or {}).get(name, {}).get(s)
            if bounds is not None:
                lo, hi = _floats(bounds[0]), _floats(bounds[1])
                ax.errorbar(
                    at, heights, yerr=[heights - lo, hi - heights], fmt="none", ecolor="0.15",
                    elinewidth=1.0, capsize=2,
                )  # fmt: skip
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
    if caption:
        fig.supxlabel(caption, x=0.01, ha="left", fontsize=8.5, color="0.3")
    fig.tight_layout()
    return save(fig, path)


def _floats(values: Sequence[float | None]) -> np.ndarray:
    """Values as floats, None as NaN (matplotlib draws nothing there)."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


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
    return save(fig, path)
