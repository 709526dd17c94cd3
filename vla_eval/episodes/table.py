"""The columnar episode table every report and comparison reads, and how it is filled.

`EpisodeTable` holds episodes as parallel numpy columns (no per-record objects, so
100,000 episodes stay cheap); `Collector` accumulates validated rows from several
files and rejects a duplicate (policy, task, split, seed) rather than counting it
twice. Depends on numpy only; never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_eval.errors import DataError


@dataclass(frozen=True)
class EpisodeTable:
    """Episodes as parallel columns, one entry per episode (length N).

    Attributes:
        policy: (N,) str; ``""`` where the record names no policy.
        task: (N,) str.
        split: (N,) str.
        seed: (N,) int64.
        success: (N,) bool.
        source: (N,) int32 index into `files`.
        line: (N,) int64 1-based line (or row) number in that file.
        files: the files read, in order.
    """

    policy: np.ndarray
    task: np.ndarray
    split: np.ndarray
    seed: np.ndarray
    success: np.ndarray
    source: np.ndarray
    line: np.ndarray
    files: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.success.shape[0])

    def where(self, i: int) -> str:
        """``file:line`` of episode `i`, for messages."""
        return f"{self.files[int(self.source[i])]}:{int(self.line[i])}"

    def select(self, mask: np.ndarray) -> EpisodeTable:
        """The episodes where boolean `mask` (N,) is true."""
        return EpisodeTable(
            self.policy[mask],
            self.task[mask],
            self.split[mask],
            self.seed[mask],
            self.success[mask],
            self.source[mask],
            self.line[mask],
            self.files,
        )

    def policies(self) -> list[str]:
        """Distinct policy names in order of first appearance (``""`` for unnamed)."""
        return list(dict.fromkeys(self.policy.tolist()))


class Collector:
    """Accumulates validated rows from several files and rejects duplicates."""

    def __init__(self) -> None:
        self.policy: list[str] = []
        self.task: list[str] = []
        self.split: list[str] = []
        self.seed: list[int] = []
        self.success: list[bool] = []
        self.source: list[int] = []
        self.line: list[int] = []
        self.files: list[str] = []
        self._seen: dict[tuple[str, str, str, int], tuple[int, int]] = {}

    def start_file(self, name: str) -> int:
        self.files.append(name)
        return len(self.files) - 1

    def add(
        self, policy: str, task: str, split: str, seed: int, success: bool, src: int, line: int
    ) -> None:
        key = (policy, task, split, seed)
        first = self._seen.setdefault(key, (src, line))
        if first != (src, line):
            who = f"policy {policy!r}, " if policy else ""
            raise DataError(
                f"{self.files[src]}:{line}: duplicate episode ({who}task {task!r}, split "
                f"{split!r}, seed {seed}) already read at {self.files[first[0]]}:{first[1]}; "
                "each (policy, task, split, seed) may appear once -- remove the repeat or "
                "give the runs different policy names"
            )
        self.policy.append(policy)
        self.task.append(task)
        self.split.append(split)
        self.seed.append(seed)
        self.success.append(success)
        self.source.append(src)
        self.line.append(line)

    def table(self) -> EpisodeTable:
        def strings(values: list[str]) -> np.ndarray:
            return np.array(values, dtype=str) if values else np.array([], dtype=str)

        return EpisodeTable(
            policy=strings(self.policy),
            task=strings(self.task),
            split=strings(self.split),
            seed=np.array(self.seed, dtype=np.int64),
            success=np.array(self.success, dtype=bool),
            source=np.array(self.source, dtype=np.int32),
            line=np.array(self.line, dtype=np.int64),
            files=tuple(self.files),
        )
