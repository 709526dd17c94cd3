"""Streaming episode counts: what a success report needs, in memory flat in the episodes.

A report needs, per (policy, task, split), successes and trials, plus the check that no
(policy, task, split, seed) appears twice. `Counter` is a reader sink (like the table's
`Collector`) that keeps exactly that while the files stream past: two integers per
cell, and per cell the set of seeds seen as a bitset in blocks of 64 seeds (a dict of
small integers), so consecutive seeds -- what every evaluation writes -- cost about two
bytes per episode and scattered seeds at most about one dict entry each. No per-episode
record, line number or string is kept: when a duplicate is met, the files are read a
second time to find where the first copy was (an error path, so paying twice is fine).
`EpisodeCounts` is the result; `EpisodeCounts.from_table` builds the same from an
`EpisodeTable`. numpy and the standard library only; never imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_eval.episodes.table import EpisodeTable, Sink, duplicate_message, name_problem
from vla_eval.errors import DataError
from vla_eval.jsonl import iter_jsonl

_INT64 = 2**63
_BLOCK_BITS = 6  # 64 seeds per block: a block is one small Python integer


@dataclass(frozen=True)
class Cell:
    """Successes and trials of one (policy, task, split)."""

    policy: str
    task: str
    split: str
    successes: int
    trials: int


@dataclass(frozen=True)
class EpisodeCounts:
    """Per-(policy, task, split) counts of every episode read, in first-appearance order.

    Attributes:
        cells: one `Cell` per (policy, task, split) seen, in the order first seen.
        files: the files read.
        task_groups: task -> group (suite) for tasks whose files name one.
        notes: what the readers assumed (a default split or task), for the report.
        episodes: episodes counted.
    """

    cells: tuple[Cell, ...]
    files: tuple[str, ...]
    task_groups: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    episodes: int = 0

    def order(self, name: str) -> list[str]:
        """Distinct values of `name` (policy, task, split or group) in first-seen order."""
        if name == "group":
            return list(dict.fromkeys(self.task_groups.get(c.task, "") for c in self.cells))
        return list(dict.fromkeys(getattr(c, name) for c in self.cells))

    def policies(self) -> list[str]:
        """Distinct policy names in order of first appearance (``""`` for unnamed)."""
        return self.order("policy")

    @classmethod
    def from_table(cls, table: EpisodeTable) -> EpisodeCounts:
        """The counts of an `EpisodeTable` (cells ordered field by field by first appearance)."""
        names, codes = zip(
            *(table.categorical(f) for f in ("policy", "task", "split")), strict=True
        )
        combined = np.zeros(len(table), dtype=np.int64)
        for values, code in zip(names, codes, strict=True):
            combined = combined * len(values) + code
        cells, inverse = np.unique(combined, return_inverse=True)
        trials = np.bincount(inverse.reshape(-1), minlength=cells.size)
        wins = np.bincount(inverse.reshape(-1), weights=table.success, minlength=cells.size)
        first = np.full(cells.size, len(table), dtype=np.int64)
        np.minimum.at(first, inverse.reshape(-1), np.arange(len(table)))
        out = []
        for i in np.argsort(first, kind="stable"):
            g, key = int(cells[i]), []
            for values in reversed(names):
                g, c = divmod(g, len(values))
                key.append(str(values[c]))
            policy, task, split = reversed(key)
            out.append(Cell(policy, task, split, int(wins[i]), int(trials[i])))
        return cls(tuple(out), table.files, dict(table.task_groups), table.notes, len(table))


class DuplicateEpisode(Exception):
    """Raised by `Counter.add` at a repeated (policy, task, split, seed); caught by the reader."""

    def __init__(self, key: tuple[str, str, str, str], seed: int, where: str) -> None:
        super().__init__(where)
        self.key, self.seed, self.where = key, seed, where


class Counter(Sink):
    """A reader sink that keeps per-cell counts and a seed bitset, nothing per episode."""

    def __init__(self, policy_name: str | None = None) -> None:
        super().__init__(policy_name)
        # (policy, task, split, scope) -> [successes, trials, {block: bits}, first "file:line"]
        self._cells: dict[tuple[str, str, str, str], list[Any]] = {}

    def add(
        self, policy: str, task: str, split: str, seed: int, success: bool, src: int, line: int
    ) -> None:
        # Runs once per episode of every file a report reads: kept to a few dict and
        # integer operations (the seed's range is checked once per new block of 64).
        key = (policy, task, split, self.scopes[src])
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = [0, 0, {}, f"{self.files[src]}:{line}"]
        blocks = cell[2]
        block = seed >> _BLOCK_BITS
        bits = blocks.get(block, 0)
        bit = 1 << (seed & 63)
        if bits & bit:
            raise DuplicateEpisode(key, seed, f"{self.files[src]}:{line}")
        if not bits and not -_INT64 <= seed < _INT64:
            text = str(seed) if abs(seed) < 10**30 else f"of {len(str(abs(seed)))} digits"
            raise DataError(
                f"{self.files[src]}:{line}: seed {text} is outside the 64-bit integer range"
            )
        blocks[block] = bits | bit
        cell[0] += success
        cell[1] += 1

    def counts(self) -> EpisodeCounts:
        """The counts so far, merged over seed scopes; names that cannot be printed are errors."""
        merged: dict[tuple[str, str, str], list[int]] = {}
        for (policy, task, split, _), (k, n, _, where) in self._cells.items():
            for kind, name in (("policy", policy), ("task", task), ("split", split)):
                problem = name_problem(name)
                if problem:
                    raise DataError(f"{where}: {kind} {name!r} {problem}; fix the name")
            total = merged.setdefault((policy, task, split), [0, 0])
            total[0] += k
            total[1] += n
        cells = tuple(Cell(*key, k, n) for key, (k, n) in merged.items())
        episodes = sum(c.trials for c in cells)
        return EpisodeCounts(
            cells, tuple(self.files), dict(self.task_groups), tuple(self.notes), episodes
        )


class _Found(Exception):
    pass


class _Finder(Sink):
    """A sink that records where an episode key first occurs (for the duplicate message)."""

    def __init__(self, policy_name: str | None, key: tuple[str, ...], seed: int) -> None:
        super().__init__(policy_name)
        self.key, self.seed, self.where = key, seed, "?"

    def set_group(self, task: str, group: object, where: str) -> None:
        pass  # already checked by the first pass

    def add(
        self, policy: str, task: str, split: str, seed: int, success: bool, src: int, line: int
    ) -> None:
        if seed == self.seed and (policy, task, split, self.scopes[src]) == self.key:
            self.where = f"{self.files[src]}:{line}"
            raise _Found


def count_into(read: Callable[[Sink], None], policy_name: str | None = None) -> EpisodeCounts:
    """Run `read` (which feeds every file to a sink) into a `Counter`; a duplicate becomes a
    `DataError` naming both places, found by reading again."""
    counter = Counter(policy_name)
    try:
        read(counter)
    except DuplicateEpisode as dup:
        finder = _Finder(policy_name, dup.key, dup.seed)
        try:
            read(finder)
        except _Found:
            pass
        policy, task, split, _ = dup.key
        raise DataError(
            duplicate_message(dup.where, finder.where, policy, task, split, dup.seed)
        ) from None
    return counter.counts()


class KeySet:
    """A set of (task, split, seed) keys kept as seed bitsets: about two bits per key for
    consecutive seeds. Supports ``add``, ``in`` and ``len`` -- what checking a shard's
    planned episodes against a file needs (`vla_eval.episodes.manifest.check_shards`).

    Example:
        >>> keys = KeySet()
        >>> keys.add("pick", "seen", 3)
        >>> ("pick", "seen", 3) in keys, ("pick", "seen", 4) in keys, len(keys)
        (True, False, 1)
    """

    def __init__(self) -> None:
        self._bits: dict[tuple[str, str], dict[int, int]] = {}
        self._count = 0

    def add(self, task: str, split: str, seed: int) -> None:
        blocks = self._bits.setdefault((task, split), {})
        block, bit = seed >> _BLOCK_BITS, 1 << (seed & 63)
        bits = blocks.get(block, 0)
        if not bits & bit:
            blocks[block] = bits | bit
            self._count += 1

    def __contains__(self, key: object) -> bool:
        if not (isinstance(key, tuple) and len(key) == 3 and isinstance(key[2], int)):
            return False
        task, split, seed = key
        bits = self._bits.get((task, split), {}).get(seed >> _BLOCK_BITS, 0)
        return bool(bits & (1 << (seed & 63)))

    def __len__(self) -> int:
        return self._count


def episode_keys(path: str | os.PathLike[str]) -> KeySet:
    """The (task, split, seed) keys of a vla-eval JSON Lines file, streamed (memory flat).

    Meant for files already read by `vla_eval.episodes.count_episodes` (which validated
    them): records here are only looked up, not checked again.
    """
    keys = KeySet()
    for _, rec in iter_jsonl(path):
        keys.add(rec["task"], rec["split"], rec["seed"])
    return keys
