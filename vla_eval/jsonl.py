"""JSON Lines files: the one reader, and the one rule for a line cut off by a crash.

Every JSON Lines file the toolkit reads -- episodes, a training run's metrics.jsonl,
a resumed run's own output -- goes through `iter_jsonl`, so they all follow one
documented policy: the file is streamed (memory does not grow with its length); blank
lines are skipped; a file that cannot be opened (or is a FIFO or device) is a
`UsageError`; text that is not UTF-8, a line that is not strict JSON (duplicate keys,
too deep, over-long integers: `vla_eval.inputs.loads`), or a line that is not a JSON
object is a `DataError` naming the file and line; and only the *last* line,
when it lacks its final newline and does not parse (a crash while writing), is
skipped with a `TruncatedLineWarning`. Writers that append on resume call
`cut_truncated_last_line` first, so new records never glue onto such a fragment.
Standard library only (plus `vla_eval.errors` and `vla_eval.inputs`); never imports numpy or torch.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from vla_eval.errors import DataError, UsageError
from vla_eval.inputs import StrictJSONError, regular_file
from vla_eval.inputs import loads as strict_loads


class TruncatedLineWarning(UserWarning):
    """The last line of a JSON Lines file was cut off mid-write and has been skipped."""


_BLOCK = 1 << 20  # bytes read at a time: memory stays flat however long the file


def iter_jsonl(path: str | os.PathLike[str], name: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each record of a JSON Lines file.

    The file is streamed in blocks of a few megabytes (memory does not grow with the
    file) and each line is parsed strictly (`vla_eval.inputs.loads`: duplicate keys,
    nesting deeper than `~vla_eval.inputs.MAX_DEPTH` and over-long integers are
    errors). Numbers written by Python's default ``json.dumps`` as ``NaN``/``Infinity``
    are accepted.

    Args:
        path: the ``.jsonl`` file; it must be a regular file (a FIFO or device is refused).
        name: how the file is called in messages (default: `path` as given).

    Yields:
        ``(line, record)``: the 1-based line number and the parsed JSON object.

    Raises:
        UsageError: the file cannot be read (missing, a folder, a FIFO, no permission).
        DataError: not UTF-8, malformed JSON, a broken strictness rule or a non-object
            on a line other than a truncated last one; the message starts with
            ``NAME:LINE:``.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.jsonl"
        >>> _ = path.write_text('{"step": 0}\\n\\n{"step": 1}\\n')
        >>> list(iter_jsonl(path))
        [(1, {'step': 0}), (3, {'step': 1})]
    """
    name = str(path) if name is None else name
    regular_file(path, name)
    try:
        fh = open(path, "rb")  # closed in the finally below
    except OSError as exc:
        raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    try:
        yield from _records(_lines(fh, name), name)
    finally:
        fh.close()


def _lines(fh: BinaryIO, name: str) -> Iterator[tuple[int, str, bool]]:
    """``(line number, text, is_unterminated_last)`` for each line, read block by block."""
    number = 0
    rest = b""
    while True:
        try:
            block = fh.read(_BLOCK)
        except OSError as exc:
            raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None
        if not block:
            break
        block = rest + block if rest else block
        cut = block.rfind(b"\n")
        if cut < 0:
            rest = block
            continue
        rest = block[cut + 1 :]
        lines = _decode(block[: cut + 1], name, number).split("\n")
        lines.pop()  # the empty string after the block's final newline
        for text in lines:
            number += 1
            yield number, text, False
    if rest:
        yield number + 1, _decode(rest, name, number), True


def _decode(data: bytes, name: str, before: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = before + data[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from None


def _records(lines: Iterator[tuple[int, str, bool]], name: str) -> Iterator[tuple[int, dict]]:
    loads = strict_loads
    for number, raw, unterminated in lines:
        if not raw or raw.isspace():
            continue
        try:
            obj = loads(raw)
        except StrictJSONError as exc:
            raise DataError(f"{name}:{number}: {exc}") from None
        except ValueError as exc:
            if unterminated:
                warnings.warn(
                    f"{name}:{number}: skipped a truncated last line (an interrupted write?)",
                    TruncatedLineWarning,
                    stacklevel=3,
                )
                return
            msg = getattr(exc, "msg", str(exc))
            col = getattr(exc, "colno", None)
            detail = f"{msg} at column {col}" if col is not None else msg
            raise DataError(f"{name}:{number}: malformed JSON ({detail})") from None
        if type(obj) is not dict:
            raise DataError(f"{name}:{number}: expected a JSON object, got {type(obj).__name__}")
        yield number, obj


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
