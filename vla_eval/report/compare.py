"""Comparing two or more policies' episodes: differences, exact tests, Holm, a ranking.

`build_comparison` gives, per pair of policies, the difference of success rates and
one test per design (paired episodes: Newcombe's paired interval and McNemar's exact
test; unpaired: Newcombe's interval and Boschloo's exact test), per task too,
Holm-adjusted p-values with each interval at the level Holm's procedure judges that
pair at, a decision that says "borderline" where interval and test disagree, and a
ranking with compact letter groups. The result is a strict-JSON-ready dict (schema
``vla-eval/compare/2``). Depends on
`vla_eval.episodes` and `vla_eval.stats` only (scipy through `vla_eval.stats.compare`,
imported when a comparison runs); never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vla_eval.episodes import EpisodeTable, load_episodes
from vla_eval.errors import UsageError
from vla_eval.report.success import interval_dict
from vla_eval.stats.intervals import check_confidence

if TYPE_CHECKING:
    from vla_eval.stats.compare import PairTest

COMPARE_SCHEMA = "vla-eval/compare/2"


def load_policies(
    paths: Sequence[str | os.PathLike[str]],
    names: Sequence[str] | None = None,
    *,
    split: str = "default",
    default_task: str = "default",
    lerobot_seed: int | None = None,
) -> list[tuple[str, EpisodeTable]]:
    """One (name, episodes) per policy: each file is read separately, and a file that
    names several policies contributes each of them. A policy without a name in its
    records is named after its file.

    Args:
        paths: the episode files.
        names: one policy name per file, overriding what the file says (LeRobot's
            ``eval_info.json`` names no policy); each such file must hold one policy.
        split, default_task, lerobot_seed: as for `vla_eval.episodes.load_episodes`.
    """
    if names is not None and len(names) != len(paths):
        raise UsageError(
            f"{len(names)} policy name(s) for {len(paths)} episode file(s); give one name per file"
        )
    out: list[tuple[str, EpisodeTable]] = []
    for i, p in enumerate(paths):
        name = None if names is None else names[i]
        table = load_episodes(
            [p],
            split,
            policy_name=name,
            default_task=default_task,
            lerobot_seed=lerobot_seed,
        )
        if len(table) == 0:
            raise UsageError(f"{p}: no episodes")
        for policy in table.policies():
            part = table.select(table.policy == policy) if len(table.policies()) > 1 else table
            out.append((policy or Path(p).stem, part))
    labels = [n for n, _ in out]
    if len(set(labels)) != len(labels):
        if names is not None:
            raise UsageError(f"policy names must differ, got {', '.join(names)}")
        # Same policy name in two files: fall back to the file paths, which differ.
        out = [
            (f"{t.files[0]}" + (f" [{n}]" if n != Path(t.files[0]).stem else ""), t) for n, t in out
        ]
    if len(out) < 2:
        raise UsageError("compare needs at least two policies (two episode files)")
    return out


def _outcomes(table: EpisodeTable) -> dict[tuple[str, str, int, str], int]:
    """(task, split, seed, seed scope) -> row index in `table`.

    The scope is ``""`` for real seeds and the file's name where seeds only number a
    file's episodes (LeRobot's suite output), so such episodes pair with nothing.
    """
    columns = (table.task.tolist(), table.split.tolist(), table.seed.tolist(), table.scope.tolist())
    return {key: i for i, key in enumerate(zip(*columns, strict=True))}


@dataclass(frozen=True)
class _Side:
    """One policy of a pair: its name, episodes and (task, split, seed) -> row index."""

    name: str
    table: EpisodeTable
    index: dict[tuple[str, str, int, str], int]


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
        A dict ready for `vla_eval.results.write_json`, schema ``vla-eval/compare/2``.

    Raises:
        UsageError: fewer than two policies, or (with ``paired=True``) an episode
            without a partner -- the message names its file and line.
    """
    from vla_eval.stats.compare import verdict

    confidence = check_confidence(confidence)
    alpha = 1 - confidence
    if len(policies) < 2:
        raise UsageError("compare needs at least two policies")
    names = [n for n, _ in policies]
    sides = {n: _Side(n, t, _outcomes(t)) for n, t in policies}
    notes: list[str] = list(dict.fromkeys(n for _, t in policies for n in t.notes))
    pair_rows = []
    task_rows: list[dict[str, Any]] = []
    for a, b in combinations(names, 2):
        overall, rows = _compare_pair(sides[a], sides[b], paired, confidence, notes)
        pair_rows.append(overall)
        task_rows += rows

    pairs = [
        {**row, "verdict": verdict(t, alpha, row["p_holm"], adjusted=len(pair_rows) > 1)}
        for t, row in _adjust(pair_rows, alpha)
    ]
    return {
        "schema": COMPARE_SCHEMA,
        "inputs": {
            "files": sorted({f for _, t in policies for f in t.files}),
            "policies": names,
            "confidence": confidence,
            "alpha": alpha,
            "paired": paired,
            "adjustment": "holm",
            "intervals": "at the level Holm's procedure judges each pair at",
        },
        "seeds": {},
        "ranking": _ranking(policies, pairs, confidence),
        "pairs": pairs,
        "per_task": task_rows,
        "notes": notes,
    }


def _compare_pair(
    a: _Side, b: _Side, paired: bool | None, confidence: float, notes: list[str]
) -> tuple[PairTest, list[dict[str, Any]]]:
    """Test `a` against `b` overall and per (task, split); notes go to `notes`.

    Returns the overall `PairTest` and the per-task rows (Holm-adjusted within the pair).
    """
    from vla_eval.stats.compare import test_pair

    alpha = 1 - confidence
    ta, tb = a.table, b.table
    matched = a.index.keys() == b.index.keys()
    if paired and not matched:
        _require_partners(a, b)
    use_pairs = matched if paired is None else bool(paired)
    if paired is None and not matched:
        unknown = [s.name for s in (a, b) if any(s.table.scopes)]
        why = (
            f"the seeds of {' and '.join(unknown)} are not recorded (LeRobot's suite output)"
            if unknown
            else "the episodes do not share (task, split, seed)"
        )
        notes.append(f"{a.name} vs {b.name}: {why}, so the tests are unpaired")
    groups_a = dict.fromkeys(zip(ta.task.tolist(), ta.split.tolist(), strict=True))
    if set(groups_a) != set(zip(tb.task.tolist(), tb.split.tolist(), strict=True)):
        notes.append(
            f"{a.name} vs {b.name}: the policies were run on different (task, split) sets, "
            "so their pooled rates mix different tasks; read the per-task rows"
        )

    def test(mask_a: np.ndarray, mask_b: np.ndarray, keys: list | None) -> PairTest:
        return test_pair(
            a.name,
            int(ta.success[mask_a].sum()),
            int(mask_a.sum()),
            b.name,
            int(tb.success[mask_b].sum()),
            int(mask_b.sum()),
            confidence=confidence,
            discordant=None if keys is None else _discordant(a, b, keys),
        )

    every = list(a.index) if use_pairs else None
    overall = test(np.ones(len(ta), dtype=bool), np.ones(len(tb), dtype=bool), every)
    per_task = []
    for task, split in groups_a:
        ma = (ta.task == task) & (ta.split == split)
        mb = (tb.task == task) & (tb.split == split)
        if not mb.any():
            continue
        keys = [k for k in a.index if k[0] == task and k[1] == split] if use_pairs else None
        per_task.append((task, split, test(ma, mb, keys)))
    adjusted = _adjust([t for _, _, t in per_task], alpha)
    rows = [
        {"a": a.name, "b": b.name, "task": task, "split": split, **row}
        for (task, split, _), (_, row) in zip(per_task, adjusted, strict=True)
    ]
    return overall, rows


def _adjust(tests: list[PairTest], alpha: float) -> list[tuple[PairTest, dict[str, Any]]]:
    """Holm-adjust a family of tests; each interval moves to its Holm step level.

    Returns each test (with the moved interval) and its row: the pair's fields,
    ``p_holm``, ``significant`` (adjusted p <= alpha) and ``decision`` (significant,
    not significant, or borderline where the interval disagrees with the test).
    """
    from vla_eval.stats.compare import decide, holm, holm_levels, with_confidence

    adjusted = holm([t.p_value for t in tests])
    levels = holm_levels([t.p_value for t in tests], alpha)
    out = []
    for t, p_adj, level in zip(tests, adjusted, levels, strict=True):
        moved = with_confidence(t, 1 - level)
        row = {
            **_pair_dict(moved),
            "p_holm": p_adj,
            "significant": p_adj <= alpha,
            "decision": decide(p_adj, alpha, moved.difference),
        }
        out.append((moved, row))
    return out


def _require_partners(a: _Side, b: _Side) -> None:
    """Raise naming the first episode of either side that has no partner in the other."""
    for mine, other in ((a, b), (b, a)):
        for key, row in mine.index.items():
            if key not in other.index:
                unknown = (
                    "; its file records no seeds (give the --seed LeRobot ran with as "
                    "--lerobot-seed)"
                    if key[3]
                    else ""
                )
                raise UsageError(
                    f"{mine.table.where(row)}: episode (task {key[0]!r}, split {key[1]!r}, "
                    f"seed {key[2]}) of {mine.name} has no partner in {other.name} "
                    f"({', '.join(other.table.files)}){unknown}; --paired needs both "
                    "policies run on the same (task, split, seed) episodes"
                )


def _discordant(a: _Side, b: _Side, keys: list) -> tuple[int, int, int]:
    """Pairs, and how many of them only `a` or only `b` won, over (task, split, seed) `keys`."""
    ra = np.fromiter((a.index[k] for k in keys), dtype=np.int64, count=len(keys))
    rb = np.fromiter((b.index[k] for k in keys), dtype=np.int64, count=len(keys))
    sa, sb = a.table.success[ra], b.table.success[rb]
    return len(keys), int((sa & ~sb).sum()), int((~sa & sb).sum())


def _ranking(
    policies: Sequence[tuple[str, EpisodeTable]],
    pairs: list[dict[str, Any]],
    confidence: float,
) -> list[dict[str, Any]]:
    """Policies by rate, best first, with rank and compact letter group."""
    from vla_eval.stats.compare import compact_letters

    names = [n for n, _ in policies]
    rates = {}
    summary = []
    for name, t in policies:
        k, n = int(t.success.sum()), len(t)
        rates[name] = k / n
        summary.append({"policy": name, "files": list(t.files), **interval_dict(k, n, confidence)})
    different = np.zeros((len(names), len(names)), dtype=bool)
    pos = {n: i for i, n in enumerate(names)}
    for row in pairs:
        i, j = pos[row["a"]], pos[row["b"]]
        different[i, j] = different[j, i] = row["decision"] == "significant"
    letters = compact_letters(names, [rates[n] for n in names], different)
    summary.sort(key=lambda r: -r["rate"])
    for rank, row in enumerate(summary, 1):
        row["rank"] = rank
        row["group"] = letters[row["policy"]]
    return summary


def _pair_dict(t: PairTest) -> dict[str, Any]:
    d = t.to_dict()
    # Flatten the two rate intervals to what a reader needs next to the difference.
    for side in ("a", "b"):
        ci = d.pop(f"rate_{side}")
        d[f"successes_{side}"] = ci["successes"]
        d[f"trials_{side}"] = ci["trials"]
        d[f"rate_{side}"] = ci["estimate"]
    return d
