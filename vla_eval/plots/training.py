"""Training figures: held-out metrics across checkpoints, and a run's metrics.jsonl.

Plain numbers (or the metrics file) in, one PNG out (see `vla_eval.plots`). Must never
import torch or the trainer.
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

from vla_eval.jsonl import iter_jsonl
from vla_eval.plots.common import save


def learning_curve_plot(
    path: str | os.PathLike[str],
    steps: Sequence[int],
    series: Mapping[str, Mapping[str, Sequence[float | None]]],
    title: str = "Held-out metrics over training",
    marks: Sequence[tuple[float, str]] = (),
    bands: Mapping[str, Mapping[str, tuple[Sequence[float | None], Sequence[float | None]]]]
    | None = None,
    caption: str | None = None,
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
        bands: ``{metric: {line: ((C,) lower, (C,) upper)}}``: an interval drawn as a
            shaded band around the line (e.g. Wilson intervals of an accuracy).
        caption: a line under the figure (what the bands are).

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
            band = (bands or {}).get(metric, {}).get(line)
            if band is not None:
                lo, hi = (np.array([np.nan if v is None else v for v in b], float) for b in band)
                ax.fill_between(x, lo, hi, color=palette[line], alpha=0.18, lw=0)
        if "accuracy" in metric:
            ax.set_ylim(0, 1.02)
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(xmax=1.0))
        for (at, label), drop in zip(marks, mark_rows(marks, x), strict=True):
            ax.axvline(at, color="0.45", lw=0.9, ls=":", zorder=0)
            # Labels near the right edge go on the line's left so they stay inside the axes.
            right = x.size > 1 and at > x.max() - 0.25 * (x.max() - x.min())
            ax.annotate(
                label,
                xy=(at, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(-2 if right else 2, -2 - 10 * drop),
                textcoords="offset points",
                fontsize=7.5,
                color="0.35",
                va="top",
                ha="right" if right else "left",
            )
        ax.set_title(metric, loc="left", fontsize=11)
        ax.set_ylabel(_unit(metric))
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if len(series[metric]) > 1 and not legend_drawn:
            ax.legend(frameon=False, fontsize=9, loc="best")
            legend_drawn = True
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=12)
    if caption:
        fig.supxlabel(caption, x=0.01, ha="left", fontsize=8.5, color="0.3")
    fig.tight_layout()
    return save(fig, path)


def mark_rows(marks: Sequence[tuple[float, str]], x: np.ndarray) -> list[int]:
    """The text row of each mark's label: a label closer than a quarter of the x range
    to the previous one drops a row, so marks at nearby steps keep readable labels.

    >>> mark_rows([(1, "a"), (2, "b"), (20, "c")], np.array([0, 24]))
    [0, 1, 0]
    """
    span = float(x.max() - x.min()) if x.size > 1 else 1.0
    rows: list[int] = []
    for i, (at, _) in enumerate(marks):
        near = i > 0 and abs(at - marks[i - 1][0]) < 0.25 * span
        rows.append((rows[-1] + 1) % 3 if near else 0)
    return rows


def _unit(metric: str) -> str:
    """The y-axis label of a learning-curve panel, from its metric's name."""
    if "accuracy" in metric:
        return "accuracy (%)"
    if "loss" in metric:
        return "loss (nats)"
    if "L1" in metric:
        return "L1 (action units)"
    return metric


def training_curves_plot(
    metrics_path: str | os.PathLike[str],
    path: str | os.PathLike[str],
    smooth: int = 25,
    title: str | None = None,
) -> Path:
    """A training run's metrics.jsonl as four panels: losses, per-task loss, held-out, LR/grad norm.

    Training curves are running means over `smooth` steps; held-out points are drawn
    where evaluations ran. Training stages are shaded in every panel and named in a
    strip above each column, where a short stage's name moves up a level instead of
    overlapping its neighbour's. Web VQA losses have their own y axis (they live on a
    different scale from action-token losses).
    """
    rows = [rec for _, rec in iter_jsonl(metrics_path)]
    sns.set_theme(style="whitegrid", context="notebook")
    step = np.array([r["step"] for r in rows], dtype=float)
    fig = plt.figure(figsize=(11.5, 7.8), layout="constrained")
    grid = fig.add_gridspec(3, 2, height_ratios=(0.5, 3, 3))
    axes = np.array([[fig.add_subplot(grid[i, j]) for j in range(2)] for i in (1, 2)])
    _training_loss_panel(axes[0, 0], rows, step, smooth)
    _task_loss_panel(axes[0, 1], rows, step, smooth)
    _heldout_panel(axes[1, 0], rows)
    _lr_panel(axes[1, 1], rows, step, smooth)
    end = max(step.max() + 1 if step.size else 1, 1)
    spans = stage_spans(rows, end)
    for j in range(2):
        strip = fig.add_subplot(grid[0, j], sharex=axes[0, j])
        stage_strip(strip, spans)
    for a in axes.flat:
        a.set_xlabel("training step")
        a.set_xlim(0, end)
        for i, (start, stop, _) in enumerate(spans):
            if i % 2 == 0:
                a.axvspan(start, stop, color="0.93", zorder=0, lw=0)
    name = title or f"Training run: {Path(metrics_path).parent.name}"
    fig.suptitle(name, x=0.01, ha="left", fontsize=12)
    fig.supxlabel(
        (
            f"Training curves: running means over {smooth} steps."
            if step.size >= smooth
            else "Training curves: every step (too few for a running mean)."
        )
        + " Shading: training stages.",
        x=0.01,
        ha="left",
        fontsize=8.5,
        color="0.3",
    )
    return save(fig, path)


def stage_spans(rows: Sequence[Mapping[str, object]], end: float) -> list[tuple[float, float, str]]:
    """(start step, end step, stage name) of each run of equal ``stage`` in logged rows.

    >>> stage_spans([{"step": 0, "stage": "a"}, {"step": 5, "stage": "b"}], 10)
    [(0.0, 5.0, 'a'), (5.0, 10, 'b')]
    """
    starts = [
        (float(r["step"]), str(r.get("stage")))  # type: ignore[arg-type]
        for i, r in enumerate(rows)
        if i == 0 or r.get("stage") != rows[i - 1].get("stage")
    ]
    stops = [s for s, _ in starts[1:]] + [end]
    return [(s, e, name) for (s, name), e in zip(starts, stops, strict=True)]


#: Character width as a share of a strip's width: a label wider than its stage moves up.
_CHAR_SHARE = 0.016


def stage_strip(ax: Axes, spans: Sequence[tuple[float, float, str]]) -> None:
    """Stage names over their spans, on a strip axis `ax` sharing the panels' steps.

    A name too long for its span goes up a level (alternating between two levels),
    aligned away from the nearer edge and joined to its span by a tick, so a stage
    that is 2% of the run keeps a readable name that overlaps none of its neighbours.
    """
    total = max((e for _, e, _ in spans), default=1) or 1
    ax.set_ylim(0, 3)
    ax.axis("off")
    level = 0
    for i, (start, stop, name) in enumerate(spans):
        ax.axvspan(start, stop, ymin=0, ymax=0.3, color="0.8" if i % 2 == 0 else "0.6", lw=0)
        mid = (start + stop) / 2
        label = f"{i + 1}. {name}"
        need = _CHAR_SHARE * (len(label) + 1) * total  # the label's width, in steps
        fits = stop - start > need
        level = 0 if fits else (1 if level != 1 else 2)
        # Level 1 reads leftwards of its tick, level 2 rightwards, so neighbouring
        # short stages' names and ticks never cross; flipped where the edge is near.
        side = "right" if level == 1 else "left"
        if side == "right" and mid - need < 0:
            side = "left"
        elif side == "left" and mid + need > total:
            side = "right"
        ax.annotate(
            label,
            xy=(mid, 0.9),
            xytext=(mid, 1.4 + 0.9 * level),
            ha="center" if fits else side,
            va="bottom",
            fontsize=8,
            color="0.25",
            arrowprops=None if fits else {"arrowstyle": "-", "color": "0.5", "lw": 0.7},
        )


def _num(v: object) -> float:
    """A logged number, or NaN for anything else (null, "nan", a missing key)."""
    return float(v) if isinstance(v, (int, float)) else np.nan


def _running_mean(y: np.ndarray, smooth: int) -> np.ndarray:
    """(T,) running mean over `smooth` steps ignoring non-finite values; NaN until full."""
    if y.size < smooth:
        return y
    ok = np.isfinite(y)
    c = np.convolve(np.where(ok, y, 0), np.ones(smooth), "valid")
    n = np.convolve(ok.astype(float), np.ones(smooth), "valid")
    mean = np.where(n > 0, c / np.maximum(n, 1), np.nan)
    return np.concatenate([np.full(smooth - 1, np.nan), mean])


def _training_loss_panel(ax: Axes, rows: list[dict], step: np.ndarray, smooth: int) -> None:
    robot = np.array([_num(r.get("robot_loss")) for r in rows])
    if np.isfinite(robot).any():
        ax.plot(
            step, _running_mean(robot, smooth), lw=1.6, color="C0", label="robot (action tokens)"
        )
    ax.set_ylabel("action-token loss (nats)", color="C0")
    web = np.array([_num(r.get("train_web_loss")) for r in rows])
    if np.isfinite(web).any():
        twin = ax.twinx()
        twin.plot(step, _running_mean(web, smooth), lw=1.4, color="C1", label="web (VQA)")
        twin.set_ylabel("web VQA loss (nats)", color="C1")
        twin.grid(False)
    ax.set_title("training loss", loc="left")


def _task_loss_panel(ax: Axes, rows: list[dict], step: np.ndarray, smooth: int) -> None:
    tasks = sorted({t for r in rows for t in r.get("loss_per_task", {})})
    for task in tasks:
        y = np.array([_num(r.get("loss_per_task", {}).get(task)) for r in rows])
        ax.plot(step, _running_mean(y, smooth), lw=1.4, label=task)
    ax.set_title("action loss per task", loc="left")
    ax.set_ylabel("action-token loss (nats)")
    if tasks:
        ax.legend(frameon=False, fontsize=9)


def _heldout_panel(ax: Axes, rows: list[dict]) -> None:
    evals = [r for r in rows if "heldout" in r]
    at = [r["step"] for r in evals]
    for split in sorted({s for r in evals for s in r["heldout"]}):
        y = [_num(r["heldout"][split].get("loss")) for r in evals]
        ax.plot(at, y, "-o", ms=4, label=f"held-out {split}")
    ax.set_ylabel("action-token loss (nats)")
    web = [_num(r.get("web_loss")) for r in evals]
    if np.isfinite(web).any():
        twin = ax.twinx()
        twin.plot(at, web, "--s", ms=4, color="C3", label="held-out web VQA")
        twin.set_ylabel("web VQA loss (nats)", color="C3")
        twin.grid(False)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, frameon=False, fontsize=9)
    elif evals:
        ax.legend(frameon=False, fontsize=9)
    ax.set_title("held-out loss", loc="left")


def _lr_panel(ax: Axes, rows: list[dict], step: np.ndarray, smooth: int) -> None:
    ax.plot(step, [_num(r.get("lr")) for r in rows], color="0.3", lw=1.4, label="learning rate")
    ax.set_yscale("log")
    ax.set_ylabel("learning rate (log scale)")
    ax.set_title("learning rate and gradient norm", loc="left")
    twin = ax.twinx()
    twin.plot(
        step,
        _running_mean(np.array([_num(r.get("grad_norm")) for r in rows]), smooth),
        color="C3",
        lw=1.2,
        label="grad norm",
    )
    twin.grid(False)
    twin.set_ylabel("grad norm (before clipping)", color="C3")
