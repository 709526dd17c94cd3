"""Anytime-valid additions to the success report and the comparison (``--anytime``).

For a report: each group's and each split's confidence sequence, valid however often
the file was looked at while rollouts arrived. For a comparison: each pair's e-value
on matched episodes (shared (task, split, seed) episodes, else the episodes of each
(task, split) matched in seed order), decided at alpha divided by the number of pairs
(Bonferroni), so all pairs together keep the error rate. Depends on
`vla_eval.episodes` and `vla_eval.stats` only; never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from vla_eval.episodes import EpisodeTable
from vla_eval.formatting import number
from vla_eval.stats.sequential import compare_sequentially, confidence_sequence


def anytime_report(report: dict[str, Any]) -> dict[str, Any]:
    """Confidence sequences for every group and split of a `build_report` result."""
    confidence = report["inputs"]["confidence"]
    groups = [
        {
            **{k: g[k] for k in ("task", "split") if k in g},
            **confidence_sequence(g["successes"], g["trials"], confidence).to_dict(),
        }
        for g in report["groups"]
    ]
    splits = [
        {
            "split": s["split"],
            **confidence_sequence(
                s["pooled"]["successes"], s["pooled"]["trials"], confidence
            ).to_dict(),
        }
        for s in report["splits"]
    ]
    return {"method": "beta-binomial-mixture", "groups": groups, "splits": splits}


def anytime_comparison(
    policies: Sequence[tuple[str, EpisodeTable]], confidence: float
) -> dict[str, Any]:
    """E-values of every pair of policies on matched episodes."""
    pairs = list(combinations(range(len(policies)), 2))
    alpha = (1 - confidence) / len(pairs)
    rows = []
    for i, j in pairs:
        (name_a, ta), (name_b, tb) = policies[i], policies[j]
        sa, sb = _matched(ta, tb)
        a_only, b_only = int((sa & ~sb).sum()), int((~sa & sb).sum())
        result = compare_sequentially(a_only, b_only, len(sa), alpha, (name_a, name_b))
        rows.append({"a": name_a, "b": name_b, **result.to_dict()})
    return {"method": "sequential-sign-test", "alpha_per_pair": alpha, "pairs": rows}


def _matched(ta: EpisodeTable, tb: EpisodeTable) -> tuple[np.ndarray, np.ndarray]:
    """Success arrays of matched episodes: by (task, split, seed) where both have the
    key, else within each (task, split) in seed order, up to the shorter side."""
    out_a: list[bool] = []
    out_b: list[bool] = []
    for task, split in dict.fromkeys(zip(ta.task.tolist(), ta.split.tolist(), strict=True)):
        ma = np.flatnonzero((ta.task == task) & (ta.split == split))
        mb = np.flatnonzero((tb.task == task) & (tb.split == split))
        seeds_b = {int(s): r for s, r in zip(tb.seed[mb].tolist(), mb.tolist(), strict=True)}
        shared = [
            (r, seeds_b[int(s)]) for s, r in zip(ta.seed[ma], ma, strict=True) if int(s) in seeds_b
        ]
        if len(shared) < min(ma.size, mb.size):  # not the same seeds: match in seed order
            ra = ma[np.argsort(ta.seed[ma], kind="stable")]
            rb = mb[np.argsort(tb.seed[mb], kind="stable")]
            n = min(ra.size, rb.size)
            shared = list(zip(ra[:n].tolist(), rb[:n].tolist(), strict=True))
        out_a += [bool(ta.success[r]) for r, _ in shared]
        out_b += [bool(tb.success[r]) for _, r in shared]
    return np.array(out_a, dtype=bool), np.array(out_b, dtype=bool)


def format_anytime_report(block: dict[str, Any]) -> str:
    """Markdown section for `anytime_report`."""
    lines = [
        "",
        "## Anytime-valid intervals",
        "",
        "Valid however often these episodes were looked at while they arrived "
        "(beta-binomial mixture confidence sequence).",
        "",
        "| group | successes/trials | rate | anytime interval |",
        "|---|---:|---:|---|",
    ]
    for g in block["groups"] + [{**s, "task": "all"} for s in block["splits"]]:
        name = " / ".join(str(g[k]) for k in ("task", "split") if k in g)
        lines.append(
            f"| {name} | {g['successes']}/{g['trials']} | {100 * g['estimate']:.1f}% | "
            f"{100 * g['lower']:.1f}–{100 * g['upper']:.1f}% |"
        )
    return "\n".join(lines)


def format_anytime_comparison(block: dict[str, Any]) -> str:
    """Markdown section for `anytime_comparison`."""
    lines = ["", "## Anytime-valid comparison", ""]
    for r in block["pairs"]:
        verdict = (
            f"decided: {r['better']} is better"
            if r["decided"]
            else "not decided yet: keep collecting episodes, or stop without a claim"
        )
        lines.append(
            f"- {r['a']} vs {r['b']}: {r['a_only']} vs {r['b_only']} discordant of "
            f"{r['pairs']} matched episodes, e-value {number(r['e_value'])} "
            f"(decides at {number(1 / r['alpha'])}); {verdict}."
        )
    return "\n".join(lines)
