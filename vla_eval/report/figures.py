"""The success report as a figure: a forest plot of every group's interval.

Lays out `build_report`'s rows (tasks x splits, pooled rows last) and hands plain
numbers to `vla_eval.plots`, which is imported only when a figure is drawn, so the
report itself never loads matplotlib. Never imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vla_eval.report.markdown import policy_label


def plot_report(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Forest plot of the report: tasks x splits with their intervals, pooled rows last."""
    from vla_eval.plots import forest_plot

    by = report["inputs"]["by"]
    labels, groups, est, lo, hi, notes = [], [], [], [], [], []
    for g in report["groups"]:
        labels.append(str(g["task"]) if "task" in by else "all tasks")
        groups.append(str(g["split"]) if "split" in by else "all splits")
        est.append(g["rate"])
        lo.append(g["lower"])
        hi.append(g["upper"])
        notes.append(f"{g['successes']}/{g['trials']}")
    summaries = 0
    if "task" in by and "split" in by:
        summaries = 1
        for s in report["splits"]:
            p = s["pooled"]
            labels.append("all tasks (pooled)")
            groups.append(s["split"])
            est.append(p["rate"])
            lo.append(p["lower"])
            hi.append(p["upper"])
            notes.append(f"{p['successes']}/{p['trials']}")
    conf = f"{100 * report['inputs']['confidence']:g}%"
    return forest_plot(
        path,
        labels,
        groups,
        est,
        lo,
        hi,
        notes=notes,
        title=f"{policy_label(report)}: success rate with {conf} Wilson intervals",
        summary_rows=summaries,
    )
