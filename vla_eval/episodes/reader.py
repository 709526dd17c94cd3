"""Reading episode files of any supported kind, validated, into counts or one `EpisodeTable`.

`count_episodes` (what a report needs: per-(policy, task, split) counts, memory flat in
the number of episodes) and `load_episodes` (every episode, for comparisons) pick the
reader by extension or content (vla-eval JSON Lines, CSV, LeRobot ``eval_info.json``);
`read_episodes`/`iter_episodes` give full `Episode` objects for scripts. Every JSON Lines file is read through `vla_eval.jsonl.iter_jsonl`,
so a truncated last line (a crash while writing) is skipped with a warning and
anything else malformed is an error naming the file and line; a duplicate (policy,
task, split, seed) is an error rather than a silent double count. Reading is built
for speed and memory (strict ``json`` per line streamed from the file, cheap checks,
no per-record objects: the table keeps categories and small integer codes, the counts
keep only a seed bitset), so a report over 100,000 episodes stays around a second. Only regular files are read (a FIFO or device is refused). Depends on numpy and the
standard library only; never imports torch or scipy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from vla_eval.episodes.counts import EpisodeCounts, count_into
from vla_eval.episodes.other_formats import ReadOptions, read_csv, read_lerobot
from vla_eval.episodes.record import SCHEMA, Episode, check_fields
from vla_eval.episodes.table import Collector, EpisodeTable, Sink
from vla_eval.errors import DataError, UsageError
from vla_eval.inputs import StrictJSONError, load_json_file, regular_file
from vla_eval.inputs import loads as strict_loads
from vla_eval.jsonl import iter_jsonl

_INT64 = 2**63


def _read_jsonl(path: Path, name: str, out: Sink) -> None:
    """Add the episodes of one vla-eval JSON Lines file to `out`."""
    src = out.start_file(name)
    add = out.add
    override = out.policy_name
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
        if "group" in rec:
            out.set_group(task, rec["group"], f"{name}:{line}")
        add(
            override if override is not None else (policy or ""),
            task,
            split,
            seed,
            success,
            src,
            line,
        )


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
    if all(col in first_line for col in ("task", "seed", "success")) and "," in first_line:
        return "csv"
    return "unknown"


def load_episodes(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    split: str = "default",
    *,
    policy_name: str | None = None,
    default_task: str = "default",
    lerobot_seed: int | None = None,
) -> EpisodeTable:
    """Read episode files of any supported kind into one table (every episode kept).

    The kind follows the extension (``.jsonl``/``.ndjson``: vla-eval episodes,
    ``.csv``: columns task, seed, success [, split, policy, group], ``.json``: LeRobot's
    ``eval_info.json``), or the content when the extension says nothing. A report,
    which needs only counts, reads with `count_episodes` instead (memory flat in the
    number of episodes); comparisons need every episode's outcome and use this.

    Args:
        paths: one or more files.
        split: split of episodes from files that record none (LeRobot, a CSV without a
            split column); the table's notes say so.
        policy_name: if given, every episode's policy, whatever its file says (a
            LeRobot file names none).
        default_task: task of LeRobot's single-environment ``eval_info.json``, which
            names none.
        lerobot_seed: the ``--seed`` LeRobot's suite evaluation ran with; its file does
            not record seeds, so without this its episodes pair with no other file's.

    Returns:
        An `EpisodeTable` with every episode of every file.

    Raises:
        UsageError: a file is missing or of an unknown kind, or a bad option.
        DataError: a malformed record or a duplicate (policy, task, split, seed),
            with file and line in the message.
    """
    paths, options = _arguments(paths, split, policy_name, default_task, lerobot_seed)
    out = Collector(policy_name)
    _read_files(paths, out, options)
    return out.table()


def count_episodes(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    split: str = "default",
    *,
    policy_name: str | None = None,
    default_task: str = "default",
    lerobot_seed: int | None = None,
) -> EpisodeCounts:
    """Like `load_episodes`, but keeps only per-(policy, task, split) counts.

    What a success report needs: memory stays flat however many episodes the files
    hold (see `vla_eval.episodes.counts`); the same validation, duplicate and
    truncation rules apply. Arguments as for `load_episodes`.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.csv"
        >>> _ = path.write_text("task,seed,success\\npick,0,1\\npick,1,0.0\\n")
        >>> counts = count_episodes(path)
        >>> [(c.task, c.split, c.successes, c.trials) for c in counts.cells]
        [('pick', 'default', 1, 2)]
    """
    paths, options = _arguments(paths, split, policy_name, default_task, lerobot_seed)
    return count_into(lambda sink: _read_files(paths, sink, options), policy_name)


def _arguments(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    split: str,
    policy_name: str | None,
    default_task: str,
    lerobot_seed: int | None,
) -> tuple[list[str | os.PathLike[str]], ReadOptions]:
    """Validate the readers' options once, where they enter."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise UsageError("no episode files given")
    for label, value in (("split", split), ("default task", default_task)):
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"the {label} must be a non-empty name, got {value!r}")
    if policy_name is not None and (not isinstance(policy_name, str) or not policy_name.strip()):
        raise UsageError(f"the policy name must be a non-empty name, got {policy_name!r}")
    if lerobot_seed is not None and (
        isinstance(lerobot_seed, bool)
        or not isinstance(lerobot_seed, int)
        or not -_INT64 <= lerobot_seed < _INT64
    ):
        raise UsageError(f"the LeRobot seed must be a 64-bit integer, got {lerobot_seed!r}")
    return list(paths), ReadOptions(split, default_task, lerobot_seed)


def _read_files(paths: Sequence[str | os.PathLike[str]], out: Sink, options: ReadOptions) -> None:
    """Feed every file to `out`, picking each file's reader."""
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
                read_csv(path, name, out, options)
            elif kind == "json":
                read_lerobot(name, out, load_json_file(path, name), options)
            else:
                raise UsageError(
                    f"{name}: unknown episode file kind; use .jsonl (vla-eval episodes), "
                    ".csv (task,split,seed,success) or LeRobot's eval_info.json"
                )
        except UnicodeDecodeError as exc:
            raise DataError(f"{name}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise UsageError(f"{name}: cannot read ({exc.strerror or exc})") from None


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
