"""Reading episode files of any supported kind, validated, into one `EpisodeTable`.

`load_episodes` picks the reader by extension or content (vla-eval JSON Lines, CSV,
LeRobot ``eval_info.json``); `read_episodes`/`iter_episodes` give full `Episode`
objects for scripts. Every JSON Lines file is read through `vla_eval.jsonl.iter_jsonl`,
so a truncated last line (a crash while writing) is skipped with a warning and
anything else malformed is an error naming the file and line; a duplicate (policy,
task, split, seed) is an error rather than a silent double count. Reading is built
for speed and memory (strict ``json`` per line streamed from the file, cheap checks,
no per-record objects: the table keeps categories and small integer codes), so a
report over 100,000 episodes stays around a second and memory grows by tens of bytes
per episode. Only regular files are read (a FIFO or device is refused). Depends on numpy and the
standard library only; never imports torch or scipy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from vla_eval.episodes.other_formats import read_csv, read_lerobot
from vla_eval.episodes.record import REQUIRED, SCHEMA, Episode, check_fields
from vla_eval.episodes.table import Collector, EpisodeTable
from vla_eval.errors import DataError, UsageError
from vla_eval.inputs import StrictJSONError, load_json_file, regular_file
from vla_eval.inputs import loads as strict_loads
from vla_eval.jsonl import iter_jsonl

_INT64 = 2**63


def _read_jsonl(path: Path, name: str, out: Collector) -> None:
    """Add the episodes of one vla-eval JSON Lines file to `out`."""
    src = out.start_file(name)
    add = out.add
    isfinite = math.isfinite
    for line, rec in iter_jsonl(path, name):
        try:
            task = rec["task"]
            split = rec["split"]
            seed = rec["seed"]
            success = rec["success"]
            policy = rec.get("policy")
            steps = rec.get("steps")
            ret = rec.get("return")
            # The fast path: exact types of our own writer; anything else gets the
            # full check, which also produces the precise message.
            fast = (
                type(task) is str
                and type(seed) is int
                and -_INT64 <= seed < _INT64
                and type(split) is str
                and type(success) is bool
                and task
                and split
                and ("schema" not in rec or rec["schema"] == SCHEMA)
                and (policy is None or type(policy) is str)
                and (steps is None or (type(steps) is int and steps >= 0))
                and (ret is None or (type(ret) in (float, int) and isfinite(ret)))
                and ("env" not in rec or type(rec["env"]) is dict)
            )
        except KeyError:
            fast = False
        if not fast:
            check_fields(rec, f"{name}:{line}")
            task, split, seed, success = rec["task"], rec["split"], rec["seed"], rec["success"]
            policy = rec.get("policy")
        add(policy or "", task, split, seed, success, src, line)


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    text = head.lstrip()
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0]
        try:
            obj = strict_loads(first.decode("utf-8", "replace"))
        except (ValueError, StrictJSONError):
            return "json"  # a multi-line JSON document (or one the reader will refuse)
        return "jsonl" if isinstance(obj, dict) and "task" in obj else "json"
    first_line = text.split(b"\n", 1)[0].decode("utf-8", "replace").lower()
    if all(col in first_line for col in REQUIRED) and "," in first_line:
        return "csv"
    return "unknown"


def load_episodes(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    split: str = "default",
) -> EpisodeTable:
    """Read episode files of any supported kind into one table.

    The kind follows the extension (``.jsonl``/``.ndjson``: vla-eval episodes,
    ``.csv``: columns task, split, seed, success [, policy], ``.json``: LeRobot's
    ``eval_info.json``), or the content when the extension says nothing.

    Args:
        paths: one or more files.
        split: split given to episodes from formats that have none (LeRobot).

    Returns:
        An `EpisodeTable` with every episode of every file.

    Raises:
        UsageError: a file is missing or of an unknown kind.
        DataError: a malformed record or a duplicate (policy, task, split, seed),
            with file and line in the message.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise UsageError("no episode files given")
    out = Collector()
    for p in paths:
        path = Path(p)
        name = str(p)
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"{name}: no such episode file")
        if path.is_dir():
            raise UsageError(f"{name}: is a folder; pass the episode files in it")
        regular_file(path, name, "episode file")
        suffix = path.suffix.lower()
        kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}.get(
            suffix
        ) or _sniff(path)
        if kind == "json" and _sniff(path) == "jsonl":
            kind = "jsonl"  # one-record .json files written line by line
        try:
            if kind == "jsonl":
                _read_jsonl(path, name, out)
            elif kind == "csv":
                read_csv(path, name, out)
            elif kind == "json":
                info = load_json_file(path, name)
                read_lerobot(path, name, out, info, split)
            else:
                raise UsageError(
                    f"{name}: unknown episode file kind; use .jsonl (vla-eval episodes), "
                    ".csv (task,split,seed,success) or LeRobot's eval_info.json"
                )
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None
    return out.table()


def read_episodes(paths: Sequence[str | os.PathLike[str]]) -> list[Episode]:
    """Full `Episode` objects (every field) from vla-eval JSON Lines files.

    Slower than `load_episodes`, which is what reports use; meant for scripts that
    need the optional fields (instruction, steps, return, extras). The same
    validation, duplicate and truncation rules apply.
    """
    return list(iter_episodes(paths))


def iter_episodes(paths: Sequence[str | os.PathLike[str]]) -> Iterator[Episode]:
    """Yield `Episode` objects from vla-eval JSON Lines files, in file order."""
    seen: dict[tuple[str | None, str, str, int], str] = {}
    for p in paths:
        path = regular_file(p, str(p), "episode file")
        for line, rec in iter_jsonl(path, str(p)):
            where = f"{p}:{line}"
            ep = Episode.from_dict(rec, where)
            key = (ep.policy or "", ep.task, ep.split, ep.seed)
            if key in seen:
                raise DataError(f"{where}: duplicate episode {key}, first at {seen[key]}")
            seen[key] = where
            yield ep
