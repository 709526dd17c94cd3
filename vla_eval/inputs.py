"""Reading user files safely: regular files only, bounded sizes, strict JSON.

Every reader of a user's file goes through these few checks where the input enters:
`regular_file` refuses folders, FIFOs (which would block forever) and devices such as
``/dev/zero`` (which never end); `read_bytes` reads with a stated size cap; `loads`
parses JSON strictly, refusing duplicate keys (``"success": true, "success": false``
must not silently count as a failure), structures nested deeper than `MAX_DEPTH` and
integers of more than 4,300 digits (ranges are checked where the numbers are used).
Errors are `DataError`/`UsageError` naming the file.
Standard library only (plus `vla_eval.errors`); never imports numpy or torch.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from vla_eval.errors import DataError, UsageError

MAX_DEPTH = 100  # nesting of JSON arrays/objects; our records use at most 4
_MAX_INT_TEXT = 4300  # digits of a JSON integer (Python 3.11's own limit for int())
MAX_TEXT_BYTES = 64 * 1024 * 1024  # protocol, eval_info.json and other whole-file reads


class StrictJSONError(Exception):
    """JSON that parses but breaks a rule (duplicate key, depth, integer length).

    Deliberately not a `ValueError`, so a JSON Lines reader never mistakes it for a
    line cut off by a crash.
    """


def regular_file(path: str | os.PathLike[str], name: str | None = None, what: str = "file") -> Path:
    """Check that `path` is an existing regular file (following symlinks) before opening it.

    Raises:
        UsageError: missing, a folder, a FIFO/device/socket, a symlink loop, unreadable.
    """
    path = Path(path)
    name = str(path) if name is None else name
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UsageError(f"{name}: cannot read (no such {what})") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{name}: cannot read (is a folder; expected a {what})")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(
            f"{name}: is not a regular file (a pipe, device or socket); only files on disk are read"
        )
    return path


def read_bytes(
    path: str | os.PathLike[str], name: str | None = None, limit: int = MAX_TEXT_BYTES
) -> bytes:
    """The whole content of a regular file of at most `limit` bytes."""
    name = str(path) if name is None else name
    path = regular_file(path, name)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise DataError(f"{name}: larger than the {limit // (1024 * 1024)} MB this reader accepts")
    return data


def read_text(
    path: str | os.PathLike[str], name: str | None = None, limit: int = MAX_TEXT_BYTES
) -> str:
    """`read_bytes` decoded as UTF-8 (a BOM is dropped); an error names the line."""
    name = str(path) if name is None else name
    data = read_bytes(path, name, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from None


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def _parse_int(text: str) -> int:
    if len(text) > _MAX_INT_TEXT:
        raise StrictJSONError(f"an integer of {len(text)} digits (at most {_MAX_INT_TEXT})")
    return int(text)


def _depth_exceeds(obj: Any, limit: int) -> bool:
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False


# Python 3.11+ refuses integers over 4,300 digits itself (a ValueError); 3.10 needs the hook.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_int=_parse_int if sys.version_info < (3, 11) else None
)
_SCAN = _DECODER.scan_once


def loads(text: str) -> Any:
    """Parse one JSON document strictly.

    ``NaN`` and ``Infinity`` (written by Python's ``json.dumps``) are accepted;
    duplicate keys, nesting deeper than `MAX_DEPTH` and integers of more than
    4,300 digits raise `StrictJSONError`; malformed JSON raises ``ValueError``.

    >>> loads('{"a": [1, 2.5, NaN]}')
    {'a': [1, 2.5, nan]}
    >>> loads('{"success": true, "success": false}')
    Traceback (most recent call last):
    ...
    vla_eval.inputs.StrictJSONError: duplicate key 'success'
    """
    try:
        try:  # the C scanner directly: a third faster than json.loads on short lines
            obj, end = _SCAN(text, 0)
        except StopIteration:
            obj, end = None, -1
        if end != len(text) and (end < 0 or not text[end:].isspace()):
            obj = _DECODER.decode(text)  # leading blanks, or raise the precise error
    except RecursionError:
        raise StrictJSONError(f"nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # Python's own limit on the digits of an integer
        raise StrictJSONError(f"a number too long to read ({exc})") from None
    if (
        len(text) > 2 * MAX_DEPTH
        and (text.count("[") + text.count("{")) > MAX_DEPTH
        and _depth_exceeds(obj, MAX_DEPTH)
    ):
        raise StrictJSONError(f"nested deeper than {MAX_DEPTH} levels")
    return obj


def load_json_file(path: str | os.PathLike[str], name: str | None = None) -> Any:
    """A whole JSON file (a regular file under `MAX_TEXT_BYTES`), parsed strictly.

    Raises:
        UsageError: the file cannot be read.
        DataError: not UTF-8, malformed, or breaking a strictness rule; names the file.
    """
    name = str(path) if name is None else name
    text = read_text(path, name)
    try:
        return loads(text)
    except StrictJSONError as exc:
        raise DataError(f"{name}: {exc}") from None
    except ValueError as exc:
        line = getattr(exc, "lineno", 1)
        raise DataError(f"{name}:{line}: malformed JSON ({getattr(exc, 'msg', exc)})") from None


MAX_NPZ_BYTES = 8 * 1024**3  # uncompressed arrays of one .npz (predictions, datasets)


def read_npz(
    path: str | os.PathLike[str], name: str | None = None, limit: int = MAX_NPZ_BYTES
) -> dict[str, Any]:
    """Every array of an ``.npz`` archive, checked before anything large is allocated.

    Refused with a `DataError` naming the file (and member): a single ``.npy`` array or
    anything that is not a zip archive, a truncated or corrupt archive, a member that is
    not a ``.npy`` array, an object (pickled) array, a member whose header declares more
    data than it holds, and archives over `limit` bytes uncompressed. Nothing is ever
    unpickled. numpy is imported here, not at module import.

    Returns:
        ``{name: array}`` in archive order (member names without ``.npy``).
    """
    import zipfile
    import zlib

    import numpy as np

    name = str(path) if name is None else name
    path = regular_file(path, name)
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise DataError(f"{name}: is a single .npy array; expected an .npz archive (np.savez)")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{name}: not a readable .npz archive (not a zip file)")
    fmt = np.lib.format
    arrays: dict[str, Any] = {}
    member = "?"
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > limit:
                raise DataError(
                    f"{name}: {total / 1024**3:.1f} GB of arrays uncompressed; this reader "
                    f"accepts at most {limit / 1024**3:.0f} GB"
                )
            for info in infos:
                member = info.filename
                if not member.endswith(".npy"):
                    raise DataError(f"{name}: member {member!r} is not a .npy array")
                with zf.open(info) as fh:
                    version = fmt.read_magic(fh)
                    header = fmt.read_array_header_1_0 if version == (1, 0) else None
                    header = header or fmt.read_array_header_2_0
                    shape, _, dtype = header(fh)
                    if dtype.hasobject:
                        raise DataError(
                            f"{name}: {member[:-4]!r} is an object array (pickled Python "
                            "objects), refused; save numeric or string arrays"
                        )
                    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    if declared > info.file_size:
                        raise DataError(
                            f"{name}: {member[:-4]!r} declares shape {shape} of {dtype} "
                            f"({declared:,} bytes) but holds {info.file_size:,} bytes"
                        )
                with zf.open(info) as fh:  # from the start: read_array reads the header too
                    arrays[member[:-4]] = fmt.read_array(fh, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        text = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DataError(f"{name}: cannot read member {member!r} ({text})") from None
    return arrays


def decode_labels(labels: Any, name: str, key: str) -> Any:
    """A byte-string label array (numpy ``S``) as text, refusing bytes that are not UTF-8."""
    import numpy as np

    if labels.dtype.kind != "S":
        return labels
    try:
        return np.char.decode(labels, "utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name}: {key!r} holds names that are not UTF-8 ({exc.reason})") from None
