"""Page sections built from result dictionaries: success reports, comparisons, findings.

The numbers come from the dictionaries `build_report` and `build_comparison` return
(the same as report.json and compare.json); rows follow the report's stable order
(tasks by name, then split). Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vla_eval.formatting import pct
from vla_eval.report.html.markdown import inline, markdown_html
from vla_eval.report.html.page import (
    Section,
    esc,
    figures_section,
    provenance_section,
    table,
    videos_section,
    write_html,
)
from vla_eval.report.markdown import (
    format_comparison,
    gap_sentence,
    ordered_groups,
    ordered_task_groups,
    policy_label,
    rates_cells,
    split_key,
)

#: The id of a success report's per-(task, split) table in the page.
SUCCESS_TABLE_ID = "success-table"


def _ci(lower: float, upper: float) -> str:
    return f"{100 * lower:.1f}–{100 * upper:.1f}%"


def report_sections(report: Mapping[str, Any]) -> list[Section]:
    """A success report as sections: per (task, split), per split, the gap, warnings."""
    conf = f"{100 * report['inputs']['confidence']:g}%"
    by = list(report["inputs"]["by"])
    rows = [
        [
            *(g[f] for f in by),
            g["successes"],
            g["trials"],
            pct(g["rate"]),
            _ci(g["lower"], g["upper"]),
        ]
        for g in ordered_groups(dict(report))
    ]
    n = len(by)
    per_group = table(
        [*by, "successes", "trials", "rate", f"{conf} CI (Wilson)"],
        rows,
        numeric=range(n, n + 3),
        caption=f"Success per {' and '.join(by)}: rows by task name, then split.",
        anchor=SUCCESS_TABLE_ID,
    )
    splits = sorted(report["splits"], key=lambda s: split_key(s["split"]))
    per_split = table(
        ["split", "tasks", "successes/trials", f"pooled rate ({conf} Wilson CI)",
         f"mean of task rates ({conf} CI)"],
        [
            [s["split"], s["tasks"], f"{s['pooled']['successes']}/{s['pooled']['trials']}",
             f"{pct(s['pooled']['rate'])} ({_ci(s['pooled']['lower'], s['pooled']['upper'])})",
             f"{pct(s['macro']['rate'])} ({_ci(s['macro']['lower'], s['macro']['upper'])})"]
            for s in splits
        ],
        numeric=(1, 2),
        anchor="split-table",
    )  # fmt: skip
    files = report["inputs"]["files"]
    intro = (
        f"<p>{report['inputs']['episodes']:,} episodes of <strong>{esc(policy_label(dict(report)))}"
        f"</strong> from {len(files)} file{'s' if len(files) != 1 else ''}.</p>"
    )
    out = [
        Section("Success rates", intro + per_group, "success"),
        Section("Splits", per_split + f"<p>{inline(gap_sentence(report['gap'], conf))}</p>"),
    ]
    if report.get("task_groups"):
        header = ["group", "split", "tasks", "successes/trials", f"pooled rate ({conf} Wilson CI)",
                  f"mean of task rates ({conf} CI)"]  # fmt: skip
        rows = [
            [g["group"] or "(none)", g["split"], g["tasks"], *rates_cells(g).split(" | ")]
            for g in ordered_task_groups(dict(report))
        ]
        out.append(Section("Task groups", table(header, rows, numeric=(2, 3))))
    if report.get("warnings"):
        out.append(Section("Warnings", _bullets(report["warnings"])))
    if report.get("anytime"):
        from vla_eval.report.anytime import format_anytime_report

        out.append(
            Section(
                "Anytime-valid intervals", markdown_html(format_anytime_report(report["anytime"]))
            )
        )
    return out


def comparison_sections(result: Mapping[str, Any]) -> list[Section]:
    """A comparison as sections: the ranking, pairs and per-task tests (its Markdown)."""
    out = [Section("Comparison", markdown_html(format_comparison(dict(result)), shift=1))]
    if result.get("anytime"):
        from vla_eval.report.anytime import format_anytime_comparison

        text = format_anytime_comparison(result["anytime"])
        out.append(Section("Anytime-valid comparison", markdown_html(text)))
    return out


def findings_section(findings: Sequence[Mapping[str, Any]], none: str = "") -> Section:
    """Diagnose findings, each with its evidence and its fix; `none` when there are none."""
    if not findings:
        text = none or (
            "No detector fired: no sign of mode collapse, forgetting, jitter, overfitting, "
            "gradient explosion or task imbalance."
        )
        return Section("Findings", f"<p>{esc(text)}</p>")
    items = []
    for f in findings:
        step = f" at step {f['step']}" if f.get("step") is not None else ""
        evidence = f.get("evidence") or {}
        ev = (
            ", ".join(f"{k} {v}" for k, v in evidence.items())
            if isinstance(evidence, Mapping)
            else ""
        )
        items.append(
            f'<div class="finding {esc(f.get("severity", "warning"))}">'
            f"<strong>{esc(f['symptom'])}</strong> ({esc(f.get('severity', 'warning'))}{esc(step)}): "
            f"{esc(f['message'])}"
            f'<div class="fix"><strong>Fix:</strong> {esc(f.get("fix", ""))}</div>'
            + (f"<div><small>evidence: {esc(ev)}</small></div>" if ev else "")
            + "</div>"
        )
    return Section("Findings", "".join(items))


def _bullets(lines: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{inline(str(t))}</li>" for t in lines) + "</ul>"


def write_report_html(
    path: str | os.PathLike[str],
    report: Mapping[str, Any],
    *,
    figures: Iterable[str | os.PathLike[str]] = (),
    videos: Iterable[str | os.PathLike[str]] = (),
    findings: Sequence[Mapping[str, Any]] | None = None,
    title: str | None = None,
) -> Path:
    """One success report's page: tables, figures, findings, videos and provenance.

    Args:
        path: the page to write (e.g. ``DIR/report.html``, or ``EPISODES.report.html``).
        report: `build_report`'s result with its ``provenance``.
        figures: PNGs to embed (those that exist), e.g. the forest plot.
        videos: rollout videos (embedded when small, else linked relative to the page).
        findings: Diagnose findings (dicts) to show with their fixes; None: no section.
        title: the page title (default: the policy's success report).
    """
    page_dir = Path(path).parent
    caption = {
        "forest.png": "Success rate per task and split with Wilson intervals; diamonds: "
        "pooled rate and mean of task rates."
    }
    return write_html(
        path,
        title or f"Success report: {policy_label(dict(report))}",
        *report_sections(report),
        figures_section(figures, caption),
        None if findings is None else findings_section(findings),
        videos_section(videos, page_dir),
        provenance_section(report.get("provenance")),
    )
