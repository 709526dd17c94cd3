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
    return save(fig, path)


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
    rows = [rec for _, rec in iter_jsonl(metrics_path)]
    sns.set_theme(style="whitegrid", context="notebook")
    step = np.array([r["step"] for r in rows], dtype=float)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), squeeze=False)
    _training_loss_panel(axes[0, 0], rows, step, smooth)
    _task_loss_panel(axes[0, 1], rows, step, smooth)
    _heldout_panel(axes[1, 0], rows)
    _lr_panel(axes[1, 1], rows, step, smooth)
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
    return save(fig, path)


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
    for key, label in (("robot_loss", "robot (action tokens)"), ("train_web_loss", "web (VQA)")):
        y = np.array([_num(r.get(key)) for r in rows])
        if np.isfinite(y).any():
            ax.plot(step, _running_mean(y, smooth), lw=1.6, label=label)
    ax.set_title("training loss", loc="left")
    ax.legend(frameon=False, fontsize=9)


def _task_loss_panel(ax: Axes, rows: list[dict], step: np.ndarray, smooth: int) -> None:
    tasks = sorted({t for r in rows for t in r.get("loss_per_task", {})})
    for task in tasks:
        y = np.array([_num(r.get("loss_per_task", {}).get(task)) for r in rows])
        ax.plot(step, _running_mean(y, smooth), lw=1.4, label=task)
    ax.set_title("action loss per task", loc="left")
    if tasks:
        ax.legend(frameon=False, fontsize=9)


def _heldout_panel(ax: Axes, rows: list[dict]) -> None:
    evals = [r for r in rows if "heldout" in r]
    for split in sorted({s for r in evals for s in r["heldout"]}):
        ax.plot(
            [r["step"] for r in evals],
            [_num(r["heldout"][split].get("loss")) for r in evals],
            "-o",
            ms=4,
            label=f"held-out {split}",
        )
    if evals:
        ax.plot(
            [r["step"] for r in evals],
            [_num(r.get("web_loss")) for r in evals],
            "--s",
            ms=4,
            label="held-out web VQA",
        )
        ax.legend(frameon=False, fontsize=9)
    ax.set_title("held-out loss", loc="left")


def _lr_panel(ax: Axes, rows: list[dict], step: np.ndarray, smooth: int) -> None:
    ax.plot(step, [_num(r.get("lr")) for r in rows], color="0.3", lw=1.4, label="learning rate")
    ax.set_yscale("log")
    ax.set_title("learning rate (log) and gradient norm", loc="left")
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
