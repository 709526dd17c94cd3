"""Success reports and policy comparisons from episode files.

`build_report` turns one policy's episodes into what a user needs after rollouts:
successes, trials, rate and Wilson interval per (task, split); per split the pooled
rate and the mean of per-task rates with a stratified bootstrap interval; and the
seen -> unseen generalisation gap with Newcombe's interval. `build_comparison` does
the same job for two or more policies: per pair the difference, exact tests (McNemar
when the policies share seeds), per task too, Holm-adjusted p-values and a compact
ranking. Both return strict-JSON-ready dicts (schemas ``vla-eval/report/1`` and
``vla-eval/compare/1``) and have Markdown renderings for the terminal. Depends on
`vla_eval.episodes` and `vla_eval.stats`; draws figures only through
`vla_eval.plots`, imported when a figure is asked for. Never imports torch, and the
report path never imports scipy, so ``vla-eval report`` starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.episodes import EpisodeTable, load_episodes
from vla_eval.errors import UsageError
from vla_eval.stats.aggregate import DEFAULT_BOOTSTRAP, macro_mean
from vla_eval.stats.intervals import binomial_interval, check_confidence

REPORT_SCHEMA = "vla-eval/report/1"
COMPARE_SCHEMA = "vla-eval/compare/1"
BY_FIELDS = ("task", "split")
WIDE_CI = 0.4  # warn when an interval is wider than this: too few trials to conclude


def parse_by(text: str) -> tuple[str, ...]:
    """Parse ``--by task,split`` into a tuple of grouping fields."""
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fields if f not in BY_FIELDS]
    if not fields or bad or len(set(fields)) != len(fields):
        raise UsageError(
            f"--by takes a comma-separated subset of {', '.join(BY_FIELDS)}, got {text!r}"
        )
    return fields


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values in order of first appearance, and each entry's index into them."""
    uniq, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return uniq[order], rank[inverse]


def _count_groups(
    table: EpisodeTable, fields: Sequence[str]
) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """Group episodes by `fields`: keys (ordered field by field, each by first appearance), successes and trials."""
    combined = np.zeros(len(table), dtype=np.int64)
    names = []
    for f in fields:
        uniq, code = _codes(getattr(table, f))
        combined = combined * len(uniq) + code
        names.append(uniq)
    # np.unique sorts the combined codes, i.e. by the first field's first-seen order,
    # then the second's: rows come out in a stable order however episodes were
    # interleaved in the file (rollouts finish out of order).
    groups, inverse = np.unique(combined, return_inverse=True)
    trials = np.bincount(inverse, minlength=groups.size)
    successes = np.bincount(inverse, weights=table.success, minlength=groups.size)
    keys = []
    for g in groups:
        key = []
        for uniq in reversed(names):
            g, c = divmod(int(g), len(uniq))
            key.append(str(uniq[c]))
        keys.append(tuple(reversed(key)))
    return keys, successes.astype(np.int64), trials.astype(np.int64)


def _interval_dict(k: int, n: int, confidence: float) -> dict[str, Any]:
    ci = binomial_interval(int(k), int(n), confidence)
    return {
        "successes": int(k),
        "trials": int(n),
        "rate": ci.estimate,
        "lower": ci.lower,
        "upper": ci.upper,
    }


def build_report(
    table: EpisodeTable,
    by: Sequence[str] = BY_FIELDS,
    confidence: float = 0.95,
    seed: int = 0,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    splits: Sequence[str] | None = None,
    gap: tuple[str, str] = ("seen", "unseen"),
) -> dict[str, Any]:
    """The success report of one policy's episodes.

    Args:
        table: the episodes (see `vla_eval.episodes.load_episodes`).
        by: fields to group the per-group table by (subset of task, split).
        confidence: level of every interval.
        seed: seed of the bootstrap generator (recorded in the result).
        n_bootstrap: bootstrap replicates for the mean of per-task rates.
        splits: splits that must be present (error if one has no episodes); by
            default, whichever splits the episodes have.
        gap: the (from, to) splits of the generalisation gap, reported when both
            are present.

    Returns:
        A dict ready for `vla_eval.results.write_json`, schema ``vla-eval/report/1``.

    Raises:
        UsageError: no episodes, episodes of several policies, or a required split
            without episodes.
    """
    confidence = check_confidence(confidence)
    if len(table) == 0:
        raise UsageError(f"{', '.join(table.files)}: no episodes to report")
    named = [p for p in table.policies() if p]
    if len(named) > 1:
        raise UsageError(
            f"the episodes come from {len(named)} policies ({', '.join(named[:5])}); "
            "report one policy at a time, or compare them with `vla-eval compare`"
        )
    split_names, _ = _codes(table.split)
    present = [str(s) for s in split_names]
    if splits:
        missing = [s for s in splits if s not in present]
        if missing:
            raise UsageError(
                f"{', '.join(table.files)}: split {missing[0]!r} has no episodes "
                f"(present: {', '.join(present)})"
            )
        present = list(splits)

    keys, k, n = _count_groups(table, by)
    groups = []
    warnings = []
    for key, ki, ni in zip(keys, k, n, strict=True):
        row = dict(zip(by, key, strict=True))
        row.update(_interval_dict(ki, ni, confidence))
        groups.append(row)
        width = row["upper"] - row["lower"]
        if width > WIDE_CI:
            label = ", ".join(f"{f} {v}" for f, v in zip(by, key, strict=True))
            warnings.append(
                f"{label}: only {ni} trials, the {100 * confidence:g}% interval is "
                f"{100 * width:.0f} points wide -- too few trials to conclude much; "
                f"see `vla-eval plan --half-width`"
            )

    rng = np.random.default_rng(seed)
    task_keys, task_k, task_n = _count_groups(table, ("split", "task"))
    split_rows = []
    pooled: dict[str, tuple[int, int]] = {}
    for s in present:
        idx = [i for i, key in enumerate(task_keys) if key[0] == s]
        ks, ns = task_k[idx], task_n[idx]
        pooled[s] = (int(ks.sum()), int(ns.sum()))
        macro = macro_mean(ks, ns, confidence, rng=rng, n_bootstrap=n_bootstrap)
        split_rows.append(
            {
                "split": s,
                "tasks": len(idx),
                "pooled": _interval_dict(*pooled[s], confidence),
                "macro": {
                    "rate": macro.estimate,
                    "lower": macro.lower,
                    "upper": macro.upper,
                    "method": macro.method,
                    "n_bootstrap": macro.n_bootstrap,
                },
            }
        )

    gap_row = None
    if gap[0] in pooled and gap[1] in pooled:
        from vla_eval.stats.compare import newcombe_difference

        d = newcombe_difference(*pooled[gap[0]], *pooled[gap[1]], confidence)
        gap_row = {
            "from": gap[0],
            "to": gap[1],
            "estimate": d.estimate,
            "lower": d.lower,
            "upper": d.upper,
            "method": d.method,
            "significant": not d.contains(0.0),
        }
        tasks_from = {key[1] for key in task_keys if key[0] == gap[0]}
        tasks_to = {key[1] for key in task_keys if key[0] == gap[1]}
        if tasks_from != tasks_to:
            only = sorted(tasks_from ^ tasks_to)
            warnings.append(
                f"the {gap[0]} and {gap[1]} splits cover different tasks ({', '.join(only[:5])} "
                "in only one); the pooled gap mixes task difficulty with generalisation"
            )

    return {
        "schema": REPORT_SCHEMA,
        "policy": named[0] if named else None,
        "inputs": {
            "files": list(table.files),
            "episodes": len(table),
            "by": list(by),
            "confidence": confidence,
            "n_bootstrap": n_bootstrap,
        },
        "seeds": {"bootstrap": seed},
        "groups": groups,
        "splits": split_rows,
        "gap": gap_row,
        "warnings": warnings,
    }


def _who(report: dict[str, Any]) -> str:
    """The policy's name, else the episode files' names."""
    return report["policy"] or ", ".join(Path(f).name for f in report["inputs"]["files"][:3])


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(lo: float, hi: float) -> str:
    return f"{100 * lo:.1f}–{100 * hi:.1f}%"


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def format_report(report: dict[str, Any]) -> str:
    """Markdown rendering of `build_report`'s result, for the terminal."""
    conf = f"{100 * report['inputs']['confidence']:g}%"
    by = report["inputs"]["by"]
    who = _who(report)
    n = report["inputs"]["episodes"]
    files = report["inputs"]["files"]
    lines = [
        f"# Success report: {who}",
        "",
        f"{n:,} episodes from {len(files)} file{'s' if len(files) != 1 else ''}.",
        "",
        "| " + " | ".join(by) + f" | successes | trials | rate | {conf} CI (Wilson) |",
        "|" + "---|" * len(by) + "---:|---:|---:|---|",
    ]
    for g in report["groups"]:
        lines.append(
            "| "
            + " | ".join(str(g[f]) for f in by)
            + f" | {g['successes']} | {g['trials']} | {_pct(g['rate'])} | "
            + f"{_ci(g['lower'], g['upper'])} |"
        )
    lines += [
        "",
        "## Splits",
        "",
        f"| split | tasks | successes/trials | pooled rate ({conf} Wilson CI) "
        f"| mean of task rates ({conf} bootstrap CI) |",
        "|---|---:|---:|---|---|",
    ]
    for s in report["splits"]:
        p, m = s["pooled"], s["macro"]
        lines.append(
            f"| {s['split']} | {s['tasks']} | {p['successes']}/{p['trials']} | "
            f"{_pct(p['rate'])} ({_ci(p['lower'], p['upper'])}) | "
            f"{_pct(m['rate'])} ({_ci(m['lower'], m['upper'])}) |"
        )
    gap = report["gap"]
    lines += ["", "## Generalisation gap", ""]
    if gap is None:
        lines.append("No gap: the episodes do not cover both a `seen` and an `unseen` split.")
    else:
        sig = (
            "the policy does measurably worse on unseen conditions"
            if gap["significant"] and gap["estimate"] > 0
            else "unseen is measurably better than seen"
            if gap["significant"]
            else "not significant: the data cannot tell the two splits apart"
        )
        lines.append(
            f"{gap['from']} − {gap['to']} (pooled): {_points(gap['estimate'])} points "
            f"({conf} Newcombe CI {_points(gap['lower'])} to {_points(gap['upper'])}); {sig}."
        )
    if report["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in report["warnings"]]
    return "\n".join(lines)


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
    who = _who(report)
    return forest_plot(
        path,
        labels,
        groups,
        est,
        lo,
        hi,
        notes=notes,
        title=f"{who}: success rate with {conf} Wilson intervals",
        summary_rows=summaries,
    )


# --- comparisons ------------------------------------------------------------------


def load_policies(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, EpisodeTable]]:
    """One (name, episodes) per policy: each file is read separately, and a file that
    names several policies contributes each of them. A policy without a name in its
    records is named after its file."""
    out: list[tuple[str, EpisodeTable]] = []
    for p in paths:
        table = load_episodes([p])
        if len(table) == 0:
            raise UsageError(f"{p}: no episodes")
        for name in table.policies():
            part = table.select(table.policy == name) if len(table.policies()) > 1 else table
            out.append((name or Path(p).stem, part))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        # Same policy name in two files: fall back to the file paths, which differ.
        out = [
            (f"{t.files[0]}" + (f" [{n}]" if n != Path(t.files[0]).stem else ""), t) for n, t in out
        ]
    if len(out) < 2:
        raise UsageError("compare needs at least two policies (two episode files)")
    return out


def _outcomes(table: EpisodeTable) -> dict[tuple[str, str, int], int]:
    """(task, split, seed) -> row index in `table`."""
    return {
        key: i
        for i, key in enumerate(
            zip(table.task.tolist(), table.split.tolist(), table.seed.tolist(), strict=True)
        )
    }


def build_comparison(
    policies: Sequence[tuple[str, EpisodeTable]],
    confidence: float = 0.95,
    paired: bool | None = None,
) -> dict[str, Any]:
    """Compare two or more policies' episodes.

    Args:
        policies: (name, episodes) per policy; see `load_policies`.
        confidence: level of the intervals; the significance level is 1 - confidence.
        paired: True to require that every episode has a partner with the same
            (task, split, seed) in every other policy (McNemar's test); False for
            unpaired tests only; None to pair exactly when the episode sets match.

    Returns:
        A dict ready for `vla_eval.results.write_json`, schema ``vla-eval/compare/1``.

    Raises:
        UsageError: fewer than two policies, or (with ``paired=True``) an episode
            without a partner -- the message names its file and line.
    """
    from vla_eval.stats.compare import compact_letters, holm, test_pair, verdict

    confidence = check_confidence(confidence)
    alpha = 1 - confidence
    if len(policies) < 2:
        raise UsageError("compare needs at least two policies")
    names = [n for n, _ in policies]
    index = {n: _outcomes(t) for n, t in policies}
    tables = dict(policies)
    notes: list[str] = []

    pair_rows = []
    task_rows = []
    for a, b in combinations(names, 2):
        ta, tb = tables[a], tables[b]
        ia, ib = index[a], index[b]
        matched = ia.keys() == ib.keys()
        if paired and not matched:
            for name, t, mine, other, oname in ((a, ta, ia, ib, b), (b, tb, ib, ia, a)):
                for key, row in mine.items():
                    if key not in other:
                        raise UsageError(
                            f"{t.where(row)}: episode (task {key[0]!r}, split {key[1]!r}, "
                            f"seed {key[2]}) of {name} has no partner in {oname} "
                            f"({', '.join(tables[oname].files)}); --paired needs both "
                            "policies run on the same (task, split, seed) episodes"
                        )
        use_pairs = matched if paired is None else bool(paired)
        if paired is None and not matched:
            notes.append(
                f"{a} vs {b}: the episodes do not share (task, split, seed), so the tests "
                "are unpaired"
            )
        common_groups = set(zip(ta.task.tolist(), ta.split.tolist(), strict=True)) == set(
            zip(tb.task.tolist(), tb.split.tolist(), strict=True)
        )
        if not common_groups:
            notes.append(
                f"{a} vs {b}: the policies were run on different (task, split) sets, so "
                "their pooled rates mix different tasks; read the per-task rows"
            )

        def counts(mask_a: np.ndarray, mask_b: np.ndarray, ta=ta, tb=tb) -> tuple[int, ...]:
            return (
                int(ta.success[mask_a].sum()),
                int(mask_a.sum()),
                int(tb.success[mask_b].sum()),
                int(mask_b.sum()),
            )

        def discordant(keys, ia=ia, ib=ib, ta=ta, tb=tb) -> tuple[int, int, int]:
            ra = np.fromiter((ia[k] for k in keys), dtype=np.int64, count=len(keys))
            rb = np.fromiter((ib[k] for k in keys), dtype=np.int64, count=len(keys))
            sa, sb = ta.success[ra], tb.success[rb]
            return len(keys), int((sa & ~sb).sum()), int((~sa & sb).sum())

        all_a = np.ones(len(ta), dtype=bool)
        all_b = np.ones(len(tb), dtype=bool)
        overall = test_pair(
            a,
            *counts(all_a, all_b)[:2],
            b,
            *counts(all_a, all_b)[2:],
            confidence=confidence,
            discordant=discordant(list(ia)) if use_pairs else None,
        )
        pair_rows.append(overall)

        per_task = []
        groups_a = dict.fromkeys(zip(ta.task.tolist(), ta.split.tolist(), strict=True))
        for task, split in groups_a:
            ma = (ta.task == task) & (ta.split == split)
            mb = (tb.task == task) & (tb.split == split)
            if not mb.any():
                continue
            keys = [key for key in ia if key[0] == task and key[1] == split]
            t = test_pair(
                a,
                *counts(ma, mb)[:2],
                b,
                *counts(ma, mb)[2:],
                confidence=confidence,
                discordant=discordant(keys) if use_pairs else None,
            )
            per_task.append((task, split, t))
        adjusted = holm([t.p_value for _, _, t in per_task])
        for (task, split, t), p_adj in zip(per_task, adjusted, strict=True):
            task_rows.append(
                {
                    "a": a,
                    "b": b,
                    "task": task,
                    "split": split,
                    **_pair_dict(t),
                    "p_holm": p_adj,
                    "significant": p_adj <= alpha,
                }
            )

    adjusted = holm([t.p_value for t in pair_rows])
    pairs = []
    for t, p_adj in zip(pair_rows, adjusted, strict=True):
        pairs.append(
            {
                **_pair_dict(t),
                "p_holm": p_adj,
                "significant": p_adj <= alpha,
                "verdict": verdict(t, alpha, p_adj, adjusted=len(pair_rows) > 1),
            }
        )

    rates = {}
    summary = []
    for name, t in policies:
        k, n = int(t.success.sum()), len(t)
        rates[name] = k / n
        summary.append({"policy": name, "files": list(t.files), **_interval_dict(k, n, confidence)})
    different = np.zeros((len(names), len(names)), dtype=bool)
    pos = {n: i for i, n in enumerate(names)}
    for row in pairs:
        i, j = pos[row["a"]], pos[row["b"]]
        different[i, j] = different[j, i] = row["significant"]
    letters = compact_letters(names, [rates[n] for n in names], different)
    summary.sort(key=lambda r: -r["rate"])
    for rank, row in enumerate(summary, 1):
        row["rank"] = rank
        row["group"] = letters[row["policy"]]

    return {
        "schema": COMPARE_SCHEMA,
        "inputs": {
            "files": sorted({f for _, t in policies for f in t.files}),
            "policies": names,
            "confidence": confidence,
            "alpha": alpha,
            "paired": paired,
            "adjustment": "holm",
        },
        "seeds": {},
        "ranking": summary,
        "pairs": pairs,
        "per_task": task_rows,
        "notes": notes,
    }


def _pair_dict(t: Any) -> dict[str, Any]:
    d = t.to_dict()
    # Flatten the two rate intervals to what a reader needs next to the difference.
    for side in ("a", "b"):
        ci = d.pop(f"rate_{side}")
        d[f"successes_{side}"] = ci["successes"]
        d[f"trials_{side}"] = ci["trials"]
        d[f"rate_{side}"] = ci["estimate"]
    return d


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


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
            f"{_pct(r['rate'])} ({_ci(r['lower'], r['upper'])}) |"
            + (f" {r['group']} |" if many else "")
        )
    if many:
        lines += [
            "",
            "Policies that share a group letter are not significantly different "
            f"(Holm-adjusted, alpha = {result['inputs']['alpha']:.3g}).",
        ]
    lines += [
        "",
        "## Pairs",
        "",
        f"| A | B | A − B, points ({conf} Newcombe CI) | Fisher p | Boschloo p | McNemar p "
        "| p (Holm) | significant |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for p in result["pairs"]:
        d = p["difference"]
        lines.append(
            f"| {p['a']} | {p['b']} | {_points(d['estimate'])} ({_points(d['lower'])} to "
            f"{_points(d['upper'])}) | {_fmt_p(p['fisher_p'])} | {_fmt_p(p['boschloo_p'])} | "
            f"{_fmt_p(p['mcnemar_p'])} | {_fmt_p(p['p_holm'])} | "
            f"{'yes' if p['significant'] else 'no'} |"
        )
    lines.append("")
    lines += [f"- {p['verdict']}" for p in result["pairs"]]
    if result["per_task"]:
        lines += [
            "",
            "## Per task",
            "",
            "| A | B | task | split | A | B | A − B, points | test | p | p (Holm, within pair) |",
            "|---|---|---|---|---:|---:|---|---|---:|---:|",
        ]
        for r in result["per_task"]:
            d = r["difference"]
            lines.append(
                f"| {r['a']} | {r['b']} | {r['task']} | {r['split']} | "
                f"{r['successes_a']}/{r['trials_a']} | {r['successes_b']}/{r['trials_b']} | "
                f"{_points(d['estimate'])} ({_points(d['lower'])} to {_points(d['upper'])}) | "
                f"{r['test']} | {_fmt_p(r['p_value'])} | {_fmt_p(r['p_holm'])} |"
            )
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines)
