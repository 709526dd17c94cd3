"""The crash-safe episode writer: one appended, flushed and fsynced JSON line per episode.

A crash loses at most the episode being written; a fragment left by an earlier crash
is cut off before appending (`vla_eval.jsonl.cut_truncated_last_line`). Every writer
holds the file's exclusive lock (`vla_eval.locking.output_lock`) while open, so a
second process writing the same file is refused at once; within one process the lock
is re-entrant (the online runner takes it before opening its writer). Standard
library only; never imports numpy or torch.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from vla_eval.episodes.record import SCHEMA, Episode, check_fields
from vla_eval.errors import UsageError
from vla_eval.jsonl import cut_truncated_last_line
from vla_eval.locking import output_lock


class EpisodeWriter:
    """Append episodes to a JSON Lines file, one flushed (and fsynced) line each.

    A crash loses at most the episode being written. If the file already ends in a
    partial line (an earlier crash), that fragment is cut off when the writer opens,
    with a warning, so new records never glue onto it. The writer holds the file's
    exclusive lock until it is closed: another process opening a writer on the same
    file gets a `UsageError` naming this process's pid.

    Args:
        path: the ``.jsonl`` file; created (with parent folders) if missing.
        fsync: also ask the OS to put each line on disk, not just in its cache.
            Costs about a millisecond per episode, which is nothing next to a rollout.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "episodes.jsonl"
        >>> with EpisodeWriter(path) as w:
        ...     w.write(Episode("pick", "seen", 0, True))
        >>> from vla_eval.episodes import read_episodes
        >>> len(read_episodes([path]))
        1
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._lock = ExitStack()  # the file's lock, held until close()
        self._lock.enter_context(output_lock(self.path, "episodes file"))
        try:
            cut_truncated_last_line(self.path)
            self._fh: io.TextIOWrapper | None = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            self._lock.close()
            raise UsageError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
        except BaseException:
            self._lock.close()
            raise

    def write(self, episode: Episode | Mapping[str, Any]) -> None:
        """Validate and append one episode (an `Episode` or a record dict)."""
        if self._fh is None:
            raise UsageError(f"{self.path}: the episode writer is closed")
        record = episode.to_dict() if isinstance(episode, Episode) else dict(episode)
        # numpy scalars (np.bool_, np.int64, ...) from a rollout loop become Python
        # values, so that `success=np.True_` is a bool and not a type error.
        for key, value in record.items():
            if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
                record[key] = value.item()
        if not isinstance(episode, Episode):
            record.setdefault("schema", SCHEMA)
            check_fields(record, str(self.path))
        # One write call per line: a crash leaves either the whole line or a prefix
        # without its newline, which the reader recognises as truncated.
        self._fh.write(json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file and release its lock (further writes are an error)."""
        try:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
        finally:
            self._lock.close()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_episodes(
    path: str | os.PathLike[str], episodes: Iterable[Episode | Mapping[str, Any]]
) -> Path:
    """Append several episodes to `path` (fsync once at the end, for bulk writes)."""
    with EpisodeWriter(path, fsync=False) as writer:
        for ep in episodes:
            writer.write(ep)
        if writer._fh is not None:
            os.fsync(writer._fh.fileno())
    return Path(path)
