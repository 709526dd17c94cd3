"""The columnar episode table every report and comparison reads, and how it is filled.

`EpisodeTable` holds episodes as compact columns: the string fields (policy, task,
split) as categories plus one small integer code per episode, so a million episodes
take tens of megabytes rather than a Python object each. `Sink` is what every reader
feeds (files, seed scopes, task groups, notes, a policy-name override); `Collector` is
the sink that accumulates validated rows from several files into such columns and, when
the table is built, rejects a duplicate (policy, task, split, seed) rather than counting
it twice, and a name that is not valid Unicode (a lone surrogate from a ``\\ud800``
escape) or holds control characters. Depends on numpy only; never imports torch.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence

import numpy as np

from vla_eval.errors import DataError

STRING_FIELDS = ("policy", "task", "split")
_INT64 = 2**63


class EpisodeTable:
    """Episodes as parallel columns, one entry per episode (length N).

    The string columns (`policy`, `task`, `split`) are stored as categories and codes
    (`categorical`); reading the attribute builds the (N,) string array on demand.

    Attributes:
        policy: (N,) str; ``""`` where the record names no policy.
        task: (N,) str.
        split: (N,) str.
        seed: (N,) int64.
        success: (N,) bool.
        source: (N,) int32 index into `files`.
        line: (N,) int64 1-based line (or row) number in that file.
        files: the files read, in order.
        scopes: per file, ``""`` when its seeds are the environment's own (episodes of
            two files with the same (task, split, seed) are the same episode), else the
            file's name: its seeds only number its episodes (LeRobot's suite output
            records no seed), so they pair with no other file.
        task_groups: task -> group (a suite such as ``libero_spatial``) for the tasks
            whose files name one.
        notes: what the readers assumed (a default split or task), for the report.
    """

    def __init__(
        self,
        categories: dict[str, np.ndarray],
        codes: dict[str, np.ndarray],
        seed: np.ndarray,
        success: np.ndarray,
        source: np.ndarray,
        line: np.ndarray,
        files: tuple[str, ...],
        scopes: Sequence[str] = (),
        task_groups: Mapping[str, str] | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        self._categories = categories
        self._codes = codes
        self.seed = seed
        self.success = success
        self.source = source
        self.line = line
        self.files = files
        self.scopes = tuple(scopes) or ("",) * len(files)
        self.task_groups = dict(task_groups or {})
        self.notes = tuple(notes)

    @classmethod
    def from_columns(
        cls,
        policy: np.ndarray,
        task: np.ndarray,
        split: np.ndarray,
        seed: np.ndarray,
        success: np.ndarray,
        source: np.ndarray,
        line: np.ndarray,
        files: tuple[str, ...],
    ) -> EpisodeTable:
        """A table from plain (N,) columns (string columns are encoded here)."""
        cats, codes = {}, {}
        for name, values in zip(STRING_FIELDS, (policy, task, split), strict=True):
            uniq, inverse = np.unique(np.asarray(values, dtype=str), return_inverse=True)
            cats[name], codes[name] = uniq, inverse.astype(np.int32).reshape(-1)
        return cls(cats, codes, np.asarray(seed, dtype=np.int64), np.asarray(success, bool),
                   np.asarray(source, np.int32), np.asarray(line, np.int64), tuple(files))  # fmt: skip

    @property
    def policy(self) -> np.ndarray:
        return self._column("policy")

    @property
    def task(self) -> np.ndarray:
        return self._column("task")

    @property
    def split(self) -> np.ndarray:
        return self._column("split")

    @property
    def scope(self) -> np.ndarray:
        """(N,) str: each episode's seed scope (see `scopes`); ``""`` for real seeds."""
        return np.asarray(self.scopes, dtype=str)[self.source] if len(self) else np.array([], str)

    def _column(self, name: str) -> np.ndarray:
        cats = self._categories[name]
        codes = self._codes[name]
        return cats[codes] if cats.size else np.array([], dtype=str)

    def categorical(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values of a string column in order of first appearance, and codes.

        Returns:
            ``(values, codes)``: values (K,) str, and codes (N,) int64 with
            ``values[codes]`` equal to the column.
        """
        codes = self._codes[name]
        used, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        return self._categories[name][used[order]], rank[inverse.reshape(-1)]

    def __len__(self) -> int:
        return int(self.success.shape[0])

    def where(self, i: int) -> str:
        """``file:line`` of episode `i`, for messages."""
        return f"{self.files[int(self.source[i])]}:{int(self.line[i])}"

    def select(self, mask: np.ndarray) -> EpisodeTable:
        """The episodes where boolean `mask` (N,) is true."""
        return EpisodeTable(
            self._categories,
            {k: v[mask] for k, v in self._codes.items()},
            self.seed[mask],
            self.success[mask],
            self.source[mask],
            self.line[mask],
            self.files,
            self.scopes,
            self.task_groups,
            self.notes,
        )

    def policies(self) -> list[str]:
        """Distinct policy names in order of first appearance (``""`` for unnamed)."""
        return [str(p) for p in self.categorical("policy")[0]]


class Sink:
    """What every reader adds episodes to: files, seed scopes, groups, notes, a name override.

    `Collector` (every episode, as a table) and `vla_eval.episodes.counts.Counter`
    (streaming counts) are sinks; readers call `start_file`, then `add` per episode and
    `set_group` where a file names a task's group.

    Args:
        policy_name: if set, every episode gets this policy name, whatever its file says.
    """

    def __init__(self, policy_name: str | None = None) -> None:
        self.policy_name = policy_name
        self.files: list[str] = []
        self.scopes: list[str] = []
        self.task_groups: dict[str, str] = {}
        self.notes: list[str] = []

    def start_file(self, name: str, seeds_known: bool = True) -> int:
        """Register a file; `seeds_known` False scopes its seeds to the file (see
        `EpisodeTable.scopes`). Returns the file's index."""
        self.files.append(name)
        self.scopes.append("" if seeds_known else name)
        return len(self.files) - 1

    def set_group(self, task: str, group: object, where: str) -> None:
        """Record that `task` belongs to `group`; a task in two groups is an error."""
        known = self.task_groups.get(task)
        if known is not None and known == group:
            return  # the common case: every record of a task repeats its group
        if not isinstance(group, str) or not group:
            raise DataError(f"{where}: 'group' must be a non-empty string, got {group!r}")
        problem = name_problem(group)
        if problem:
            raise DataError(f"{where}: group {group!r} {problem}; fix the name")
        if known is not None:
            raise DataError(
                f"{where}: task {task!r} is in group {group!r} here but in {known!r} "
                "before; a task belongs to one group"
            )
        self.task_groups[task] = group

    def note(self, text: str) -> None:
        self.notes.append(text)

    def add(
        self, policy: str, task: str, split: str, seed: int, success: bool, src: int, line: int
    ) -> None:
        raise NotImplementedError


class Collector(Sink):
    """Accumulates validated rows from several files; duplicates are rejected in `table`."""

    def __init__(self, policy_name: str | None = None) -> None:
        super().__init__(policy_name)
        self._names: dict[str, dict[str, int]] = {f: {} for f in STRING_FIELDS}
        self._codes = {f: array("i") for f in STRING_FIELDS}
        self.seed = array("q")
        self.success = array("b")
        self.source = array("i")
        self.line = array("q")

    def add(
        self, policy: str, task: str, split: str, seed: int, success: bool, src: int, line: int
    ) -> None:
        if not -_INT64 <= seed < _INT64:
            text = str(seed) if abs(seed) < 10**30 else f"of {len(str(abs(seed)))} digits"
            raise DataError(
                f"{self.files[src]}:{line}: seed {text} is outside the 64-bit integer range"
            )
        # Unrolled: this runs once per episode of every file a report reads.
        names = self._names["policy"]
        code = names.get(policy)
        if code is None:
            code = names[policy] = len(names)
        self._codes["policy"].append(code)
        names = self._names["task"]
        code = names.get(task)
        if code is None:
            code = names[task] = len(names)
        self._codes["task"].append(code)
        names = self._names["split"]
        code = names.get(split)
        if code is None:
            code = names[split] = len(names)
        self._codes["split"].append(code)
        self.seed.append(seed)
        self.success.append(success)
        self.source.append(src)
        self.line.append(line)

    def table(self) -> EpisodeTable:
        """The collected episodes as a table.

        Raises:
            DataError: a duplicate (policy, task, split, seed), or a name that is not
                valid Unicode; the message names the file and line.
        """
        # Views of the collected buffers, not copies: memory stays at ~30 bytes per episode.
        codes = {f: np.frombuffer(self._codes[f], dtype=np.int32) for f in STRING_FIELDS}
        cats = {f: np.array(list(self._names[f]), dtype=str) for f in STRING_FIELDS}
        table = EpisodeTable(
            cats,
            codes,
            np.frombuffer(self.seed, dtype=np.int64),
            np.frombuffer(self.success, dtype=np.bool_),
            np.frombuffer(self.source, dtype=np.int32),
            np.frombuffer(self.line, dtype=np.int64),
            tuple(self.files),
            self.scopes,
            self.task_groups,
            self.notes,
        )
        self._check_unicode(table)
        self._check_duplicates(table)
        return table

    def _check_unicode(self, table: EpisodeTable) -> None:
        for field in STRING_FIELDS:
            for code, name in enumerate(self._names[field]):
                problem = name_problem(name)
                if problem:
                    i = int(np.flatnonzero(table._codes[field] == code)[0])
                    raise DataError(f"{table.where(i)}: {field} {name!r} {problem}; fix the name")

    def _check_duplicates(self, table: EpisodeTable) -> None:
        n = len(table)
        if n < 2:
            return
        c = table._codes
        _, scope_of_file = np.unique(np.asarray(table.scopes, dtype=str), return_inverse=True)
        scope = scope_of_file.reshape(-1).astype(np.int32)[table.source]
        keys = (table.seed, scope, c["split"], c["task"], c["policy"])
        order = np.lexsort((np.arange(n), *keys))  # stable: equal keys stay in read order
        same = np.ones(n - 1, dtype=bool)
        for k in keys:
            s = k[order]
            same &= s[1:] == s[:-1]
        if not same.any():
            return
        repeat = int(order[1:][same].min())  # the first repeat in read order
        match = np.ones(n, dtype=bool)
        for k in keys:
            match &= k == k[repeat]
        first = int(np.flatnonzero(match)[0])
        policy, task, split = (str(table._categories[f][c[f][repeat]]) for f in STRING_FIELDS)
        raise DataError(
            duplicate_message(
                table.where(repeat),
                table.where(first),
                policy,
                task,
                split,
                int(table.seed[repeat]),
            )
        )


def duplicate_message(where: str, first: str, policy: str, task: str, split: str, seed: int) -> str:
    """The one wording of a duplicate episode error (the table's and the counter's)."""
    who = f"policy {policy!r}, " if policy else ""
    return (
        f"{where}: duplicate episode ({who}task {task!r}, split {split!r}, seed {seed}) "
        f"already read at {first}; each (policy, task, split, seed) may appear once -- "
        "remove the repeat or give the runs different policy names"
    )


def name_problem(name: str) -> str | None:
    """Why a policy, task or split name cannot be printed and written faithfully, or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate such as \\ud800)"
    if not name.isprintable() and any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character (a NUL, newline or escape)"
    return None
