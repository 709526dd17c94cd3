"""A success report (``vla-eval report`` / ``online``) as tracker scalars and text.

Every rate goes with its interval: per group (task and split, or whatever the report
was grouped by) ``success/<task>/<split>/rate``, ``.../lower``, ``.../upper`` and the
counts; per split the pooled rate ``success/pooled/<split>/...`` and the mean of task
rates ``success/macro/<split>/...``; and the seen-to-unseen gap
``success/gap/<from>-<to>/estimate|lower|upper``. An undefined value (null) is left out,
never logged as 0. The whole report is also logged as a Markdown table. Reads the
report's plain dict only: no numpy, no report module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vla_eval.trackers.base import Tracker

GROUP_NUMBERS = ("rate", "lower", "upper", "successes", "trials")
INTERVAL = ("rate", "lower", "upper")


def _group_name(group: Mapping[str, Any], by: list[str]) -> str:
    keys = by or sorted(k for k in group if k not in GROUP_NUMBERS)
    return "/".join(str(group.get(k)) for k in keys)


def _put(out: dict[str, float], prefix: str, values: Mapping[str, Any], keys: tuple[str, ...]):
    for key in keys:
        value = values.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}/{key}"] = float(value)


def success_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The report's rates, interval bounds and counts as flat scalar names.

    >>> success_metrics({"inputs": {"by": ["task", "split"]}, "groups": [
    ...     {"task": "pick", "split": "seen", "successes": 3, "trials": 4,
    ...      "rate": 0.75, "lower": 0.3, "upper": 0.95}]})["success/pick/seen/lower"]
    0.3
    """
    by = list((report.get("inputs") or {}).get("by") or [])
    out: dict[str, float] = {}
    for group in report.get("groups") or []:
        _put(out, f"success/{_group_name(group, by)}", group, GROUP_NUMBERS)
    for split in report.get("splits") or []:
        name = split.get("split")
        _put(out, f"success/pooled/{name}", split.get("pooled") or {}, (*INTERVAL, "trials"))
        _put(out, f"success/macro/{name}", split.get("macro") or {}, INTERVAL)
    gap = report.get("gap")
    if isinstance(gap, Mapping):
        prefix = f"success/gap/{gap.get('from')}-{gap.get('to')}"
        _put(out, prefix, gap, ("estimate", "lower", "upper"))
    return out


def _percent(value: Any) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{100 * value:.1f}%"


def report_markdown(report: Mapping[str, Any]) -> str:
    """The per-group and pooled rates with their intervals as a Markdown table."""
    by = list((report.get("inputs") or {}).get("by") or [])
    rows = ["| group | successes / trials | rate | interval |", "|---|---|---|---|"]
    for g in report.get("groups") or []:
        rows.append(
            f"| {_group_name(g, by)} | {g.get('successes')} / {g.get('trials')} | "
            f"{_percent(g.get('rate'))} | {_percent(g.get('lower'))} - {_percent(g.get('upper'))} |"
        )
    for s in report.get("splits") or []:
        p = s.get("pooled") or {}
        rows.append(
            f"| pooled {s.get('split')} | {p.get('successes')} / {p.get('trials')} | "
            f"{_percent(p.get('rate'))} | {_percent(p.get('lower'))} - {_percent(p.get('upper'))} |"
        )
    confidence = (report.get("inputs") or {}).get("confidence")
    if isinstance(confidence, (int, float)):
        rows.append(f"\nIntervals at {100 * confidence:g}% confidence.")
    return "\n".join(rows)


def log_success_report(tracker: Tracker, report: Mapping[str, Any], step: int = 0) -> None:
    """Log a success report's rates with their intervals (scalars) and its table (text)."""
    tracker.log_scalars(success_metrics(report), step)
    tracker.log_text("success/report", report_markdown(report), step)
