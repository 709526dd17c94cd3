"""The success report as a figure: a forest plot of every group's interval.

Lays out `build_report`'s rows (tasks by name, then splits; the pooled rate and the
mean of task rates last) and hands plain numbers to `vla_eval.plots`, which is imported
only when a figure is drawn, so the report itself never loads matplotlib. Never
imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vla_eval.report.markdown import ordered_groups, policy_label, split_key

POOLED = "all tasks (pooled)"
MACRO = "mean of task rates"


def plot_report(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Forest plot of the report: tasks x splits with their intervals, summaries last.

    The summaries are each split's pooled rate (Wilson) and the mean of its task rates
    (the report's macro interval), drawn as diamonds below a line.
    """
    from vla_eval.plots import forest_plot

    by = report["inputs"]["by"]
    rows: list[tuple[str, str, float, float, float, str]] = []
    for g in ordered_groups(report):
        task = " / ".join(str(g[f]) for f in by if f != "split") or "all tasks"
        split = str(g["split"]) if "split" in by else "all splits"
        rows.append(
            (task, split, g["rate"], g["lower"], g["upper"], f"{g['successes']}/{g['trials']}")
        )
    summaries = 0
    if "task" in by and "split" in by:
        summaries = 2
        splits = sorted(report["splits"], key=lambda s: split_key(s["split"]))
        for s in splits:
            p = s["pooled"]
            rows.append(
                (
                    POOLED,
                    s["split"],
                    p["rate"],
                    p["lower"],
                    p["upper"],
                    f"{p['successes']}/{p['trials']}",
                )
            )
        for s in splits:
            m = s["macro"]
            rows.append(
                (
                    MACRO,
                    s["split"],
                    m["rate"],
                    m["lower"],
                    m["upper"],
                    f"{s['tasks']} task{'s' if s['tasks'] != 1 else ''}",
                )
            )
    conf = f"{100 * report['inputs']['confidence']:g}%"
    labels, groups, est, lo, hi, notes = (list(c) for c in zip(*rows, strict=True))
    return forest_plot(
        path,
        labels,
        groups,
        est,
        lo,
        hi,
        notes=notes,
        title=f"{policy_label(report)}: success rate with {conf} intervals",
        summary_rows=summaries,
        caption=(
            f"Rows: tasks by name, then split. Bars: {conf} Wilson intervals (k/n at the right); "
            f"diamonds: pooled over tasks (Wilson) and mean of task rates ({conf} CI)."
            if summaries
            else f"Bars: {conf} Wilson intervals (k/n at the right)."
        ),
    )


def plot_comparison(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Forest plot of a comparison: each policy's pooled rate with its Wilson interval,
    in rank order (best first), group letters beside the counts when there are three or more."""
    from vla_eval.plots import forest_plot

    ranking = result["ranking"]
    many = len(ranking) > 2
    conf = f"{100 * result['inputs']['confidence']:g}%"
    return forest_plot(
        path,
        [str(r["policy"]) for r in ranking],
        ["all episodes"] * len(ranking),
        [r["rate"] for r in ranking],
        [r["lower"] for r in ranking],
        [r["upper"] for r in ranking],
        notes=[
            f"{r['successes']}/{r['trials']}" + (f"  {r['group']}" if many else "") for r in ranking
        ],
        title=f"Success rate per policy with {conf} Wilson intervals",
        xlabel="success rate",
        caption="Rows: policies by rank (best first)."
        + (
            " Letters: policies sharing one are not significantly different (Holm)." if many else ""
        ),
    )
