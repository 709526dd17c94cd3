"""Rollout videos (``--videos K``): chosen from the recorded episodes, then replayed with frames.

A run renders nothing for video: after it, `choose` picks up to K episodes per (task,
split) from the outcomes the episodes file records — half successes and half
failures (ceil(K/2) successes) when there are enough, the lowest seeds first, filled
from the other outcome when one is short — and `record_videos` replays just those
episodes (same seeds, so the same episodes for a deterministic policy) through
`frames.FrameCapture`. Files are ``{task}__{split}__seed{seed}__{outcome}.mp4`` (the
recorded outcome; ``.gif`` without imageio-ffmpeg) in ``<episodes stem>.videos/``
beside the episodes file, with an index ``videos.json`` (`INDEX_SCHEMA`) that gives
each file's recorded and replayed outcome; a replay that ends differently is said
in the index and on stderr. With K = 0 nothing here runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.online.config import OnlineConfig
from vla_eval.online.frames import DEFAULT_FPS, FrameCapture, VideoWriter, video_format
from vla_eval.online.resume import EpisodeKey
from vla_eval.online.rollout import rollout_batch
from vla_eval.online.work import Work, select_tasks

#: The schema of ``videos.json``.
INDEX_SCHEMA = "vla-eval/videos/1"
INDEX_NAME = "videos.json"


@dataclass(frozen=True)
class Recorded:
    """What the episodes file says about one episode."""

    success: bool
    steps: int | None


def videos_dir(episodes: str | Path) -> Path:
    """The folder of a run's videos: ``<episodes stem>.videos`` beside the episodes file.

    >>> videos_dir("runs/a.jsonl").as_posix()
    'runs/a.videos'
    """
    path = Path(episodes)
    return path.with_name(f"{path.stem}.videos")


def choose(outcomes: Mapping[EpisodeKey, bool], k: int) -> list[EpisodeKey]:
    """Up to ``k`` episodes per (task, split), successes and failures, lowest seeds first.

    ceil(k/2) successes and floor(k/2) failures when there are that many of each; the
    outcome that falls short is made up from the other.

    >>> done = {("pick", "seen", s): s % 3 == 0 for s in range(6)}
    >>> choose(done, 3)
    [('pick', 'seen', 0), ('pick', 'seen', 1), ('pick', 'seen', 3)]
    >>> choose({("pick", "seen", s): True for s in range(4)}, 2)
    [('pick', 'seen', 0), ('pick', 'seen', 1)]
    """
    if k < 0:
        raise UsageError(f"--videos must be at least 0, got {k}")
    groups: dict[tuple[str, str], dict[bool, list[int]]] = {}
    for (task, split, seed), success in outcomes.items():
        groups.setdefault((task, split), {True: [], False: []})[bool(success)].append(seed)
    chosen: list[EpisodeKey] = []
    for (task, split), by in sorted(groups.items()):
        wins, losses = sorted(by[True]), sorted(by[False])
        n_win = min(-(-k // 2), len(wins))
        n_loss = min(k - n_win, len(losses))
        n_win = min(k - n_loss, len(wins))  # a short supply of failures is made up
        seeds = sorted(wins[:n_win] + losses[:n_loss])
        chosen.extend((task, split, s) for s in seeds)
    return chosen


def file_name(key: EpisodeKey, success: bool, fmt: str) -> str:
    """``{task}__{split}__seed{seed}__{success|failure}.{fmt}``, safe as a file name.

    >>> file_name(("pick", "seen", 3), False, "mp4")
    'pick__seen__seed3__failure.mp4'
    """
    task, split, seed = key

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".") or "-"

    outcome = "success" if success else "failure"
    return f"{safe(task)}__{safe(split)}__seed{seed}__{outcome}.{fmt}"


def recorded_episodes(out: Path, run: str) -> dict[EpisodeKey, Recorded]:
    """The finished episodes of run ``run`` in the episodes file ``out``."""
    import warnings

    from vla_eval.episodes import read_episodes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a truncated last line was reported by the run
        episodes = read_episodes([out]) if out.exists() else []
    return {
        (ep.task, ep.split, ep.seed): Recorded(ep.success, ep.steps)
        for ep in episodes
        if ep.extra.get("run") == run
    }


def record_videos(
    env: Env,
    policy: Any,
    config: OnlineConfig,
    recorded: Mapping[EpisodeKey, Recorded],
    k: int,
    folder: str | Path,
) -> list[dict[str, Any]]:
    """Replay up to ``k`` recorded episodes per (task, split) with frames; write the index.

    Args:
        env: the environment the run used.
        policy: the run's policy.
        config: the run's config (step limits and chunking replay the same way).
        recorded: the run's finished episodes (from its episodes file).
        k: videos per (task, split).
        folder: where the videos and ``videos.json`` go (see `videos_dir`).

    Returns:
        The index entries, one per video, in (task, split, seed) order.
    """
    from vla_eval.locking import output_lock
    from vla_eval.results import write_json

    folder = Path(folder)
    keys = choose({key: r.success for key, r in recorded.items()}, k)
    fmt = video_format()
    if fmt == "gif":
        print("vla-eval: warning: imageio-ffmpeg is not installed; writing GIF", file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    enable_rendering = getattr(env, "enable_rendering", None)
    if callable(enable_rendering):
        enable_rendering()  # environments that draw frames only when asked to (Gymnasium)
    with output_lock(folder, "videos folder", directory=True):
        tasks = {(t.name, t.split): t for t in select_tasks(env, config)}
        work = [Work(tasks[(key[0], key[1])], key[2]) for key in keys]
        fps = _fps(env)
        entries = []
        for start in range(0, len(work), config.batch_size):
            batch = work[start : start + config.batch_size]
            entries += _replay(env, policy, config, batch, recorded, folder, fmt, fps)
        index = {
            "schema": INDEX_SCHEMA,
            "format": fmt,
            "fps": fps,
            "per_task_split": k,
            "videos": entries,
        }
        _remove_stale(folder, {e["file"] for e in entries})
        write_json(folder / INDEX_NAME, index)
    return entries


def _replay(
    env: Env,
    policy: Any,
    config: OnlineConfig,
    batch: Sequence[Work],
    recorded: Mapping[EpisodeKey, Recorded],
    folder: Path,
    fmt: str,
    fps: float,
) -> list[dict[str, Any]]:
    """One batch of chosen episodes replayed with frames; their index entries."""

    def open_writer(position: int) -> VideoWriter:
        key = batch[position].key
        return VideoWriter(folder / file_name(key, recorded[key].success, fmt), fmt, fps)

    capture = FrameCapture(env, open_writer)
    position = {w.key: i for i, w in enumerate(batch)}
    entries = []
    try:
        for work, result in rollout_batch(capture, policy, batch, config):  # type: ignore[arg-type]
            writer = capture.finish(position[work.key])
            entries.append(_entry(work.key, recorded[work.key], result, writer))
    finally:
        capture.abandon()
    return sorted(entries, key=lambda e: (e["task"], e["split"], e["seed"]))


def _entry(
    key: EpisodeKey, rec: Recorded, result: dict[str, Any], writer: VideoWriter
) -> dict[str, Any]:
    task, split, seed = key
    said, saw = _outcome(rec.success), _outcome(result["success"])
    same = said == saw and rec.steps in (None, result["steps"])
    if not same:
        print(
            f"vla-eval: warning: the replay of {task}/{split} seed {seed} ended in {saw} after "
            f"{result['steps']} steps; the run recorded {said} after {rec.steps} steps "
            "(the policy or environment is not deterministic); the video shows the replay",
            file=sys.stderr,
        )
    return {
        "file": writer.path.name,
        "task": task,
        "split": split,
        "seed": seed,
        "recorded": said,
        "replayed": saw,
        "recorded_steps": rec.steps,
        "replayed_steps": result["steps"],
        "frames": writer.frames,
        "matches": same,
    }


def _outcome(success: bool) -> str:
    return "success" if success else "failure"


def _fps(env: Env) -> float:
    """The environment's ``render_fps`` (or ``metadata["render_fps"]``), else `DEFAULT_FPS`."""
    fps = getattr(env, "render_fps", None)
    if fps is None:
        metadata = getattr(env, "metadata", None)
        fps = metadata.get("render_fps") if isinstance(metadata, Mapping) else None
    try:
        value = float(fps) if fps is not None else float(DEFAULT_FPS)
    except (TypeError, ValueError):
        return float(DEFAULT_FPS)
    return value if value > 0 else float(DEFAULT_FPS)


def _remove_stale(folder: Path, keep: set[str]) -> None:
    """Remove the videos an earlier index listed that this one does not."""
    import json

    index = folder / INDEX_NAME
    if not index.is_file():
        return
    try:
        old = json.loads(index.read_text(encoding="utf-8"))
        names = [e["file"] for e in old.get("videos", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        return  # not an index of ours: leave the folder's files alone
    for name in names:
        if isinstance(name, str) and name not in keep and "/" not in name and name != INDEX_NAME:
            (folder / name).unlink(missing_ok=True)
