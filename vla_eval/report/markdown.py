"""Markdown renderings of success reports and comparisons, for the terminal.

Turns the strict-JSON dicts of `build_report` and `build_comparison` into Markdown
tables and plain sentences; adds no numbers of its own. Depends on
`vla_eval.formatting` only; never imports numpy, matplotlib or torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vla_eval.formatting import pct, pvalue


def policy_label(report: dict[str, Any]) -> str:
    """The policy's name, else the episode files' names."""
    return report["policy"] or ", ".join(Path(f).name for f in report["inputs"]["files"][:3])


#: Splits in this order first (the generalisation question reads seen, then unseen).
SPLIT_ORDER = ("seen", "unseen")


def natural_key(text: object) -> tuple:
    """Sort key that orders embedded numbers by value: ``task 2`` before ``task 10``.

    >>> sorted(["task 10", "task 2", "Pick"], key=natural_key)
    ['Pick', 'task 2', 'task 10']
    """
    parts = re.split(r"(\d+)", str(text).casefold())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def split_key(split: object) -> tuple:
    """Sort key for splits: seen, unseen, then the others by name."""
    name = str(split)
    return (
        (SPLIT_ORDER.index(name), ())
        if name in SPLIT_ORDER
        else (len(SPLIT_ORDER), natural_key(name))
    )


def ordered_groups(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's (task, split) rows in a stable order: by task name, then split.

    Episodes arrive in whatever order rollouts finish; tables and figures must not
    follow it. Every grouping field of ``inputs.by`` takes part, splits last.
    """
    by = report["inputs"]["by"]
    fields = [f for f in by if f != "split"]

    def key(g: dict[str, Any]) -> tuple:
        return (
            *(natural_key(g.get(f)) for f in fields),
            split_key(g.get("split")) if "split" in by else (),
        )

    return sorted(report["groups"], key=key)


def ordered_task_groups(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's per-(task group, split) rows, by group name, then split."""
    rows = report.get("task_groups") or []
    return sorted(rows, key=lambda g: (natural_key(g["group"] or ""), split_key(g["split"])))


def rates_cells(row: dict[str, Any]) -> str:
    """``k/n | pooled (CI) | macro (CI)`` of a split or task-group row, as table cells."""
    p, m = row["pooled"], row["macro"]
    return (
        f"{p['successes']}/{p['trials']} | {pct(p['rate'])} ({_ci(p['lower'], p['upper'])}) | "
        f"{pct(m['rate'])} ({_ci(m['lower'], m['upper'])})"
    )


def _ci(lo: float, hi: float) -> str:
    return f"{100 * lo:.1f}–{100 * hi:.1f}%"


def _points(x: float) -> str:
    text = f"{100 * x:+.1f}"
    if x != 0 and float(text) == 0:  # never print a bound that excludes 0 as +0.0
        text = f"{100 * x:+.2g}"
    return text


def format_report(report: dict[str, Any]) -> str:
    """Markdown rendering of `build_report`'s result, for the terminal."""
    conf = f"{100 * report['inputs']['confidence']:g}%"
    by = report["inputs"]["by"]
    n = report["inputs"]["episodes"]
    files = report["inputs"]["files"]
    lines = [
        f"# Success report: {policy_label(report)}",
        "",
        f"{n:,} episodes from {len(files)} file{'s' if len(files) != 1 else ''}.",
        "",
        "| " + " | ".join(by) + f" | successes | trials | rate | {conf} CI (Wilson) |",
        "|" + "---|" * len(by) + "---:|---:|---:|---|",
    ]
    for g in ordered_groups(report):
        lines.append(
            "| "
            + " | ".join(str(g[f]) for f in by)
            + f" | {g['successes']} | {g['trials']} | {pct(g['rate'])} | "
            + f"{_ci(g['lower'], g['upper'])} |"
        )
    lines += [
        "",
        "## Splits",
        "",
        f"| split | tasks | successes/trials | pooled rate ({conf} Wilson CI) "
        f"| mean of task rates ({conf} CI) |",
        "|---|---:|---:|---|---|",
    ]
    lines += [
        f"| {s['split']} | {s['tasks']} | {rates_cells(s)} |"
        for s in sorted(report["splits"], key=lambda s: split_key(s["split"]))
    ]
    if report.get("task_groups"):
        lines += [
            "",
            "## Task groups",
            "",
            f"| group | split | tasks | successes/trials | pooled rate ({conf} Wilson CI) "
            f"| mean of task rates ({conf} CI) |",
            "|---|---|---:|---:|---|---|",
        ]
        lines += [
            f"| {g['group'] or '(none)'} | {g['split']} | {g['tasks']} | {rates_cells(g)} |"
            for g in ordered_task_groups(report)
        ]
    lines += ["", "## Generalisation gap", "", gap_sentence(report["gap"], conf)]
    if report["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines)


def gap_sentence(gap: dict[str, Any] | None, conf: str) -> str:
    """The seen -> unseen gap as one sentence (`conf` is the level's label, e.g. "95%")."""
    if gap is None:
        return "No gap: the episodes do not cover both a `seen` and an `unseen` split."
    sig = (
        "the policy does measurably worse on unseen conditions"
        if gap["significant"] and gap["estimate"] > 0
        else "unseen is measurably better than seen"
        if gap["significant"]
        else "not significant: the data cannot tell the two splits apart"
    )
    return (
        f"{gap['from']} − {gap['to']} (pooled): {_points(gap['estimate'])} points "
        f"({conf} Newcombe CI {_points(gap['lower'])} to {_points(gap['upper'])}); {sig}."
    )


def format_comparison(result: dict[str, Any]) -> str:
    """Markdown rendering of `build_comparison`'s result, for the terminal."""
    conf = f"{100 * result['inputs']['confidence']:g}%"
    many = len(result["inputs"]["policies"]) > 2
    lines = [
        f"# Comparison of {len(result['inputs']['policies'])} policies",
        "",
        f"| rank | policy | successes/trials | rate ({conf} Wilson CI) |"
        + (" group |" if many else ""),
        "|---:|---|---:|---|" + ("---|" if many else ""),
    ]
    for r in result["ranking"]:
        lines.append(
            f"| {r['rank']} | {r['policy']} | {r['successes']}/{r['trials']} | "
            f"{pct(r['rate'])} ({_ci(r['lower'], r['upper'])}) |"
            + (f" {r['group']} |" if many else "")
        )
    if many:
        lines += [
            "",
            "Policies that share a group letter are not significantly different "
            f"(Holm-adjusted, alpha = {result['inputs']['alpha']:.3g}; a borderline pair "
            "counts as not different).",
        ]
    lines += [
        "",
        "## Pairs",
        "",
        "| A | B | A − B, points (CI) | CI | test | p | p (Holm) | decision |",
        "|---|---|---|---|---|---:|---:|---|",
    ]
    for p in result["pairs"]:
        lines.append(
            f"| {p['a']} | {p['b']} | {_difference(p['difference'])} | {p['test']} | "
            f"{pvalue(p['p_value'])} | {pvalue(p['p_holm'])} | {p['decision']} |"
        )
    lines.append("")
    lines += [f"- {p['verdict']}" for p in result["pairs"]]
    lines += _per_task_lines(result["per_task"])
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines)


def _per_task_lines(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "",
        "## Per task",
        "",
        "| A | B | task | split | A | B | A − B, points (CI) | CI | test | p "
        "| p (Holm, within pair) | decision |",
        "|---|---|---|---|---:|---:|---|---|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['a']} | {r['b']} | {r['task']} | {r['split']} | "
            f"{r['successes_a']}/{r['trials_a']} | {r['successes_b']}/{r['trials_b']} | "
            f"{_difference(r['difference'])} | {r['test']} | {pvalue(r['p_value'])} | "
            f"{pvalue(r['p_holm'])} | {r['decision']} |"
        )
    return lines


def _difference(d: dict[str, Any]) -> str:
    """Estimate (lower to upper) | the interval's level and kind, for a table row."""
    kind = "paired Newcombe" if d["method"] == "newcombe-paired" else "Newcombe"
    return (
        f"{_points(d['estimate'])} ({_points(d['lower'])} to {_points(d['upper'])}) | "
        f"{100 * d['confidence']:.4g}% {kind}"
    )
