"""Resuming a run: which of its episodes an existing episodes file already holds.

A file is resumed only when asked to and only when every record in it comes from
the same run (the fingerprint `work.run_id`), so episodes of another policy,
environment version or setting are never pooled. Reading goes through the episodes
reader, imported when a file is actually resumed; a truncated last line (a crash
mid-write) is left to the episodes writer, which cuts it and says so.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from vla_eval.errors import UsageError

#: (task, split, seed): an episode's identity within a run.
EpisodeKey = tuple[str, str, int]


def finished_keys(out: Path, run_id: str, resume: bool) -> set[EpisodeKey]:
    """The (task, split, seed) of every episode `out` already holds for run `run_id`.

    A missing or empty file holds none. A non-empty file needs ``resume`` and must
    hold episodes of this run only; otherwise a UsageError says what to do.
    """
    return set(finished_outcomes(out, run_id, resume))


def finished_outcomes(out: Path, run_id: str, resume: bool) -> dict[EpisodeKey, bool]:
    """Like `finished_keys`, with each finished episode's success (for stopping rules)."""
    done: dict[EpisodeKey, bool] = {}
    if not (out.exists() and out.stat().st_size > 0):
        return done
    if not resume:
        raise UsageError(
            f"{out} already exists; pass --resume to continue it, or choose another --out"
        )
    from vla_eval.episodes import read_episodes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the writer reports a truncated line itself
        existing = read_episodes([out])
    for ep in existing:
        if ep.extra.get("run") != run_id:
            raise UsageError(
                f"{out} holds episodes of a different run (run {ep.extra.get('run')!r}, this "
                f"run is {run_id!r}: another policy, environment version or setting); "
                "choose another --out"
            )
        done[(ep.task, ep.split, ep.seed)] = ep.success
    return done
