"""One writer per output: an exclusive advisory lock on every file or folder a command writes.

`output_lock(path)` takes an exclusive ``flock`` on a small lock file that belongs to the
output (``.NAME.lock`` beside an output file, ``.vla-eval.lock`` inside an output folder)
and records the holder's pid in it. A second writer fails at once with a `UsageError`
naming that pid, so two runs can never interleave their records in one file or one run
directory. The lock is released when the block ends and by the operating system when the
process dies, however it dies, so a stale lock file never blocks anyone: only a live
holder does. Taking a folder's lock also removes the temporary files a killed writer left
there (`vla_eval.results.clean_leftovers`). Locks are re-entrant within a process. The lock file itself stays (removing it would let two writers lock two
different files of the same name). Standard library, `vla_eval.errors` and `vla_eval.results` only.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vla_eval.errors import UsageError
from vla_eval.results import clean_leftovers

#: The name of the lock file inside a locked output folder.
DIR_LOCK_NAME = ".vla-eval.lock"

# Lock files this process holds: flock conflicts between two descriptors of one process,
# so a nested lock of the same output is granted without locking again.
_HELD: set[str] = set()


def lock_file_for(path: str | os.PathLike[str], directory: bool) -> Path:
    """The lock file of an output: inside a folder, or beside a file (``.NAME.lock``)."""
    path = Path(path)
    return path / DIR_LOCK_NAME if directory else path.parent / f".{path.name}.lock"


def _prepare(path: Path, directory: bool) -> None:
    """Create the folder the lock file lives in; a clear UsageError when the path cannot be one."""
    if directory:
        if path.exists() and not path.is_dir():
            raise UsageError(f"--out {path} is a file, not a folder; choose a folder for --out")
        where = path
    else:
        if path.is_dir():
            raise UsageError(f"--out {path} is a folder; this command writes one file there")
        if path.exists() and not path.is_file():  # /dev/null, a FIFO, a socket
            raise UsageError(f"--out {path} is not a regular file; choose a file for --out")
        where = path.parent
    try:
        where.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UsageError(f"cannot create the folder {where} for --out: {reason}") from None


def _holder(fd: int) -> str:
    """The pid recorded in an open lock file ("unknown" while the holder is still writing it)."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


@contextmanager
def output_lock(
    path: str | os.PathLike[str], what: str = "output", *, directory: bool = False
) -> Iterator[Path]:
    """Hold the exclusive lock of an output for the duration of the block.

    Args:
        path: the output file, or the output folder when ``directory`` is True (the
            folder is created if missing).
        what: what the output is, for the message (e.g. "episodes file", "run directory").
        directory: whether `path` is a folder.

    Yields:
        The lock file's path.

    Raises:
        UsageError: another process holds the lock (the message names its pid), or the
            lock file cannot be created there.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "episodes.jsonl"
        >>> with output_lock(out, "episodes file") as lock:
        ...     lock.name
        '.episodes.jsonl.lock'
    """
    path = Path(path)
    _prepare(path, directory)
    lock = lock_file_for(path, directory)
    key = os.path.realpath(lock)
    if key in _HELD:  # this process holds it already (a run writing its own offline plots)
        yield lock
        return
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UsageError(f"cannot lock {what} {path}: {lock}: {reason}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(f"cannot lock {what} {path}: {err.strerror}") from None
            raise UsageError(
                f"{what} {path} is being written by another vla-eval process "
                f"(pid {_holder(fd)}); wait for it to finish or choose another --out"
            ) from None
        pid = f"{os.getpid()}\n".encode("ascii")
        os.pwrite(fd, pid, 0)
        if os.fstat(fd).st_size > len(pid):  # a longer pid was there (truncating is slow)
            os.ftruncate(fd, len(pid))
        _HELD.add(key)
        if directory:
            clean_leftovers(path)  # what a killed writer of this folder left
        try:
            yield lock
        finally:
            _HELD.discard(key)
    finally:
        os.close(fd)  # closing the descriptor releases the flock
