"""JSON Lines files: the one reader, and the one rule for a line cut off by a crash.

Every JSON Lines file the toolkit reads -- episodes, a training run's metrics.jsonl,
a resumed run's own output -- goes through `iter_jsonl`, so they all follow one
documented policy: blank lines are skipped; a file that cannot be opened is a
`UsageError`; text that is not UTF-8, a line that is not JSON, or a line that is not
a JSON object is a `DataError` naming the file and line; and only the *last* line,
when it lacks its final newline and does not parse (a crash while writing), is
skipped with a `TruncatedLineWarning`. Writers that append on resume call
`cut_truncated_last_line` first, so new records never glue onto such a fragment.
Standard library only (plus `vla_eval.errors`); never imports numpy or torch.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from vla_eval.errors import DataError, UsageError


class TruncatedLineWarning(UserWarning):
    """The last line of a JSON Lines file was cut off mid-write and has been skipped."""


def iter_jsonl(path: str | os.PathLike[str], name: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each record of a JSON Lines file.

    The whole file is read at once (one ``read`` and one ``split`` are much faster
    than line-by-line I/O for the files this toolkit writes). Numbers written by
    Python's default ``json.dumps`` as ``NaN``/``Infinity`` are accepted.

    Args:
        path: the ``.jsonl`` file.
        name: how the file is called in messages (default: `path` as given).

    Yields:
        ``(line, record)``: the 1-based line number and the parsed JSON object.

    Raises:
        UsageError: the file cannot be read (missing, a folder, no permission).
        DataError: not UTF-8, malformed JSON or a non-object on a line other than a
            truncated last one; the message starts with ``NAME:LINE:``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
        >>> _ = path.write_text('{"step": 0}\\n\\n{"step": 1}\\n')
        >>> list(iter_jsonl(path))
        [(1, {'step': 0}), (3, {'step': 1})]
    """
    name = str(path) if name is None else name
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from None
    lines = text.split("\n")
    # A complete file ends in "\n", so the final element is "" unless the last line
    # was cut off (or the file was written without a final newline).
    last = len(lines) - 1
    loads = json.loads
    for i, raw in enumerate(lines):
        if not raw or raw.isspace():
            continue
        try:
            obj = loads(raw)
        except ValueError as exc:
            if i == last:
                warnings.warn(
                    f"{name}:{i + 1}: skipped a truncated last line (an interrupted write?)",
                    TruncatedLineWarning,
                    stacklevel=2,
                )
                return
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            detail = f"{msg} at column {col}" if col is not None else msg
            raise DataError(f"{name}:{i + 1}: malformed JSON ({detail})") from None
        if type(obj) is not dict:
            raise DataError(f"{name}:{i + 1}: expected a JSON object, got {type(obj).__name__}")
        yield i + 1, obj


def cut_truncated_last_line(path: str | os.PathLike[str]) -> None:
    """Make a JSON Lines file end at a complete line before appending to it.

    A last line without its newline is either a fragment left by a crash (removed,
    with a `TruncatedLineWarning`) or a complete record that merely lacks the newline
    (the newline is added). A missing or empty file is left alone.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        # Scan back to the previous newline; fragments are short, so read in blocks.
        end = fh.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(4096, pos)
            pos -= step
            fh.seek(pos)
            block = fh.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                pos += nl + 1
                break
        fh.seek(pos)
        fragment = fh.read()
        try:
            json.loads(fragment)
        except ValueError:
            fh.truncate(pos)
            warnings.warn(
                f"{path}:{_line_at(path, pos)}: removed a truncated final line "
                f"({len(fragment)} bytes) left by an interrupted write",
                TruncatedLineWarning,
                stacklevel=3,
            )
        else:  # a complete record that merely lacks its newline
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")


def _line_at(path: Path, offset: int) -> int:
    """1-based line number of the byte at `offset` in `path`."""
    with open(path, "rb") as fh:
        return fh.read(offset).count(b"\n") + 1
