"""Episode records: the one file format every rollout, report and comparison shares.

An episode is one rollout of a policy on a task with a seed, and whether it succeeded.
This module defines the record (`Episode`), a crash-safe JSON Lines writer that
appends, flushes and fsyncs one line per episode, and readers that turn episode
files -- ours, LeRobot's ``eval_info.json`` and plain CSV -- into one columnar
`EpisodeTable`. Every reader validates each record and names the file and line of
anything wrong; a duplicate (policy, task, split, seed) is an error rather than a
silent double count, and only a truncated final line (a crash while writing) is
skipped, with a warning. Reading is built for speed (``json.loads`` per line plus
cheap checks, no per-record objects), so a report over 100,000 episodes stays well
under a second. Depends on numpy and the standard library only; never imports torch
or scipy.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.errors import DataError, UsageError

SCHEMA = "vla-eval/episode/1"
REQUIRED = ("task", "split", "seed", "success")
# Keys the record defines; anything else a writer adds is kept in `Episode.extra`.
_KNOWN = frozenset({"schema", "policy", *REQUIRED, "steps", "return", "instruction", "env"})


class TruncatedLineWarning(UserWarning):
    """The last line of an episode file was cut off mid-write and has been skipped."""


@dataclass(frozen=True)
class Episode:
    """One rollout: which policy ran which task (in which split, with which seed), and
    whether it succeeded.

    Attributes:
        task: task name, e.g. ``"pick"``.
        split: evaluation split, any string; ``"seen"`` and ``"unseen"`` get the
            generalisation-gap treatment in reports.
        seed: the environment seed (an integer); episodes of two policies with the
            same (task, split, seed) are paired in comparisons.
        success: whether the episode reached the goal.
        policy: name of the policy or checkpoint, if known.
        steps: number of environment steps taken.
        episode_return: sum of rewards (written as ``"return"`` in the file).
        instruction: the language instruction given to the policy.
        env: free-form description of the environment (name, version, ...).
        extra: any further keys (e.g. ``actions``), written back unchanged.

    Example:
        >>> Episode("pick", "seen", 7, True, policy="ckpt-2000").to_dict()["success"]
        True
    """

    task: str
    split: str
    seed: int
    success: bool
    policy: str | None = None
    steps: int | None = None
    episode_return: float | None = None
    instruction: str | None = None
    env: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_fields(self.to_dict(), "episode")

    def to_dict(self) -> dict[str, Any]:
        """The record as written to a JSON Lines file (optional fields left out if unset)."""
        out: dict[str, Any] = {"schema": SCHEMA}
        if self.policy is not None:
            out["policy"] = self.policy
        out.update(task=self.task, split=self.split, seed=self.seed, success=self.success)
        for key, value in (
            ("steps", self.steps),
            ("return", self.episode_return),
            ("instruction", self.instruction),
            ("env", self.env),
        ):
            if value is not None:
                out[key] = dict(value) if key == "env" else value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], where: str = "episode") -> Episode:
        """Build an episode from a parsed record, validating it.

        Args:
            record: one parsed JSON object.
            where: location used in error messages, e.g. ``"runs/a.jsonl:12"``.

        Raises:
            DataError: a required key is missing or a value has the wrong type.
        """
        if not isinstance(record, Mapping):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        _check_fields(record, where)
        return cls(
            task=record["task"],
            split=record["split"],
            seed=record["seed"],
            success=record["success"],
            policy=record.get("policy"),
            steps=record.get("steps"),
            episode_return=record.get("return"),
            instruction=record.get("instruction"),
            env=record.get("env"),
            extra={k: v for k, v in record.items() if k not in _KNOWN},
        )


def _check_fields(rec: Mapping[str, Any], where: str) -> None:
    """Validate one record's fields (cheap: a handful of isinstance checks)."""
    schema = rec.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise DataError(
            f"{where}: unsupported record schema {schema!r}; this version reads {SCHEMA!r}"
        )
    for key in REQUIRED:
        if key not in rec:
            raise DataError(f"{where}: missing required key {key!r} (need {', '.join(REQUIRED)})")
    for key in ("task", "split"):
        if not isinstance(rec[key], str) or not rec[key]:
            raise DataError(f"{where}: {key!r} must be a non-empty string, got {rec[key]!r}")
    seed = rec["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"{where}: 'seed' must be an integer, got {seed!r}")
    if not isinstance(rec["success"], bool):
        raise DataError(f"{where}: 'success' must be true or false, got {rec['success']!r}")
    policy = rec.get("policy")
    if policy is not None and not isinstance(policy, str):
        raise DataError(f"{where}: 'policy' must be a string, got {policy!r}")
    steps = rec.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
        raise DataError(f"{where}: 'steps' must be a non-negative integer, got {steps!r}")
    ret = rec.get("return")
    if ret is not None and (
        isinstance(ret, bool) or not isinstance(ret, (int, float)) or not math.isfinite(ret)
    ):
        raise DataError(f"{where}: 'return' must be a finite number, got {ret!r}")
    env = rec.get("env")
    if env is not None and not isinstance(env, Mapping):
        raise DataError(f"{where}: 'env' must be an object, got {env!r}")


# --- writing ----------------------------------------------------------------------


class EpisodeWriter:
    """Append episodes to a JSON Lines file, one flushed (and fsynced) line each.

    A crash loses at most the episode being written. If the file already ends in a
    partial line (an earlier crash), that fragment is cut off when the writer opens,
    with a warning, so new records never glue onto it.

    Args:
        path: the ``.jsonl`` file; created (with parent folders) if missing.
        fsync: also ask the OS to put each line on disk, not just in its cache.
            Costs about a millisecond per episode, which is nothing next to a rollout.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "episodes.jsonl"
        >>> with EpisodeWriter(path) as w:
        ...     w.write(Episode("pick", "seen", 0, True))
        >>> len(read_episodes([path]))
        1
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _cut_partial_last_line(self.path)
        self._fh: io.TextIOWrapper | None = open(self.path, "a", encoding="utf-8")

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
            _check_fields(record, str(self.path))
        # One write call per line: a crash leaves either the whole line or a prefix
        # without its newline, which the reader recognises as truncated.
        self._fh.write(json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n")
        self._fh.flush()
        if self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file (further writes are an error)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

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


def _cut_partial_last_line(path: Path) -> None:
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
                f"{path}:{fragment_line(path, pos)}: removed a truncated final line "
                f"({len(fragment)} bytes) left by an interrupted write",
                TruncatedLineWarning,
                stacklevel=3,
            )
        else:  # a complete record that merely lacks its newline
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")


def fragment_line(path: Path, offset: int) -> int:
    """1-based line number of the byte at `offset` in `path`."""
    with open(path, "rb") as fh:
        return fh.read(offset).count(b"\n") + 1


# --- the columnar table -----------------------------------------------------------


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


class _Collector:
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


# --- readers ----------------------------------------------------------------------


def _read_jsonl(path: Path, name: str, out: _Collector) -> None:
    src = out.start_file(name)
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from None
    lines = text.split("\n")
    # A file written by us ends in "\n", so the final element is "" unless the last
    # line was cut off (or the file was written without a final newline).
    last = len(lines) - 1
    loads = json.loads
    add = out.add
    isfinite = math.isfinite
    for i, raw in enumerate(lines):
        if not raw or raw.isspace():
            continue
        where = f"{name}:{i + 1}"
        try:
            rec = loads(raw)
        except ValueError as exc:
            if i == last:
                warnings.warn(
                    f"{where}: skipped a truncated final line (an interrupted write?)",
                    TruncatedLineWarning,
                    stacklevel=4,
                )
                continue
            raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
        if type(rec) is not dict:
            raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
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
                and type(split) is str
                and type(seed) is int
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
            _check_fields(rec, where)
            task, split, seed, success = rec["task"], rec["split"], rec["seed"], rec["success"]
            policy = rec.get("policy")
        add(policy or "", task, split, seed, success, src, i + 1)


_TRUE = frozenset({"1", "true", "t", "yes", "y", "success", "succeeded"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "failure", "failed"})


def _read_csv(path: Path, name: str, out: _Collector) -> None:
    src = out.start_file(name)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{name}:1: malformed CSV header ({exc})") from None
        cols = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in cols]
        if missing:
            raise DataError(
                f"{name}:1: CSV header lacks column(s) {', '.join(missing)}; "
                f"need {', '.join(REQUIRED)} (and optionally policy)"
            )
        idx = {c: cols.index(c) for c in (*REQUIRED, "policy") if c in cols}
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                where = f"{name}:{line}"
                if len(row) != len(cols):
                    raise DataError(f"{where}: expected {len(cols)} columns, found {len(row)}")
                task, split = row[idx["task"]].strip(), row[idx["split"]].strip()
                if not task or not split:
                    raise DataError(f"{where}: empty task or split")
                seed_text = row[idx["seed"]].strip()
                try:
                    seed = int(seed_text)
                except ValueError:
                    raise DataError(
                        f"{where}: seed must be an integer, got {seed_text!r}"
                    ) from None
                flag = row[idx["success"]].strip().lower()
                if flag in _TRUE:
                    success = True
                elif flag in _FALSE:
                    success = False
                else:
                    raise DataError(
                        f"{where}: success must be true/false or 1/0, got {row[idx['success']]!r}"
                    )
                policy = row[idx["policy"]].strip() if "policy" in idx else ""
                out.add(policy, task, split, seed, success, src, line)
        except csv.Error as exc:
            raise DataError(f"{name}:{reader.line_num}: malformed CSV ({exc})") from None


def _read_lerobot(path: Path, name: str, out: _Collector, info: Any, split: str) -> None:
    """LeRobot ``eval_info.json`` (written by ``lerobot-eval``), both layouts.

    * Single environment (``lerobot/scripts/eval.py``): ``{"per_episode": [{"episode_ix",
      "sum_reward", "max_reward", "success", "seed"}, ...], "aggregated": {...}}``. The
      task is the file's folder name; a missing seed falls back to ``episode_ix``.
    * Multi-task (``lerobot_eval.py``, e.g. LIBERO): ``{"per_task": [{"task_group",
      "task_id", "metrics": {"successes": [...], ...}}, ...], "per_group": ...,
      "overall": ...}``. The task is ``<task_group>/<task_id>``; per-task seeds are not
      stored, but every task starts from the same ``--seed`` and counts up, so the
      episode's index is its seed offset, which pairs episodes across policies.

    The policy is left unnamed (comparisons name it after the file); the split is
    `split`.
    """
    src = out.start_file(name)
    if isinstance(info, dict) and isinstance(info.get("per_episode"), list):
        task = path.parent.name or "task"
        for i, ep in enumerate(info["per_episode"]):
            where = f"{name}: per_episode[{i}]"
            if not isinstance(ep, dict) or "success" not in ep:
                raise DataError(f"{where}: expected an object with a 'success' key")
            success = _lerobot_bool(ep["success"], where)
            seed = ep.get("seed")
            if seed is None:
                seed = ep.get("episode_ix", i)
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise DataError(f"{where}: seed must be an integer or null, got {seed!r}")
            out.add("", task, split, seed, success, src, i + 1)
        return
    if isinstance(info, dict) and isinstance(info.get("per_task"), list):
        row = 0
        for t, entry in enumerate(info["per_task"]):
            where = f"{name}: per_task[{t}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
                raise DataError(f"{where}: expected an object with 'metrics'")
            successes = entry["metrics"].get("successes")
            if not isinstance(successes, list):
                raise DataError(f"{where}: metrics.successes must be a list")
            task = f"{entry.get('task_group', 'task')}/{entry.get('task_id', t)}"
            for i, flag in enumerate(successes):
                row += 1
                success = _lerobot_bool(flag, f"{where}.metrics.successes[{i}]")
                out.add("", task, split, i, success, src, row)
        return
    raise DataError(
        f"{name}: not a LeRobot eval_info.json (no 'per_episode' or 'per_task' list) "
        "and not a vla-eval episode file"
    )


def _lerobot_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise DataError(f"{where}: success must be true/false, got {value!r}")


def _sniff(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(4096)
    text = head.lstrip()
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0]
        try:
            obj = json.loads(first)
        except ValueError:
            return "json"  # a multi-line JSON document
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
    out = _Collector()
    for p in paths:
        path = Path(p)
        name = str(p)
        if not path.exists():
            raise UsageError(f"{name}: no such episode file")
        if path.is_dir():
            raise UsageError(f"{name}: is a folder; pass the episode files in it")
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
                _read_csv(path, name, out)
            elif kind == "json":
                try:
                    info = json.loads(path.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise DataError(
                        f"{name}:{getattr(exc, 'lineno', 1)}: malformed JSON "
                        f"({getattr(exc, 'msg', exc)})"
                    ) from None
                _read_lerobot(path, name, out, info, split)
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
        path = Path(p)
        if not path.exists():
            raise UsageError(f"{p}: no such episode file")
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        for i, raw in enumerate(lines):
            if not raw.strip():
                continue
            where = f"{p}:{i + 1}"
            try:
                rec = json.loads(raw)
            except ValueError as exc:
                if i == len(lines) - 1:
                    warnings.warn(
                        f"{where}: skipped a truncated final line", TruncatedLineWarning, 2
                    )
                    continue
                raise DataError(f"{where}: malformed JSON ({exc})") from None
            ep = Episode.from_dict(rec, where)
            key = (ep.policy or "", ep.task, ep.split, ep.seed)
            if key in seen:
                raise DataError(f"{where}: duplicate episode {key}, first at {seen[key]}")
            seen[key] = where
            yield ep
