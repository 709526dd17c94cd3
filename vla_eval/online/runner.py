"""`run`: roll a policy out over a run's planned episodes and append them to an episodes file.

Each finished episode is appended at once (one flushed line), so a run killed at any
moment loses at most the episodes in flight. A resumed run re-runs only the batches
with missing episodes, with the same batch composition as the first time, and keeps
only the missing episodes, so the resumed file holds exactly the episodes of an
uninterrupted run. The episodes file is locked for the whole run
(`vla_eval.locking.output_lock`): a second run on the same file is refused at once.
The batches are built one at a time, so memory does not grow with the number of trials.
With a stopping hook (`StopHook`, e.g. `vla_eval.stats.stopping.Stopper`) the episodes
are taken round by round (seed 0 of every task, then seed 1, ...) and the hook sees
each finished batch's outcomes in that order; the run stops after the first batch at
which it says so, so a stopped run's episodes are a prefix of the full run in that order.
With ``videos=K`` the chosen episodes are replayed afterwards with frame capture
(`vla_eval.online.videos`); the run itself never renders for video.
numpy, tqdm and the package's episodes writer only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.online.config import OnlineConfig
from vla_eval.online.output import Progress, env_provenance, episode_record
from vla_eval.online.resume import EpisodeKey, finished_outcomes
from vla_eval.online.rollout import rollout_batch
from vla_eval.online.work import Plan, plan, run_id, shard_batches


class StopHook(Protocol):
    """What a run asks after each finished batch: stop now?"""

    def begin(self, round_size: int) -> None:
        """Told once, before the first batch: episodes per round (one per (task, split))."""

    def observe(self, outcomes: Iterable[tuple[EpisodeKey, bool]]) -> bool:
        """The next outcomes in plan order; True stops the run after this batch."""
        ...


def run(
    env: Env,
    policy: Callable[[dict[str, Any]], Any],
    config: OnlineConfig,
    out: str | Path,
    *,
    policy_id: str | None = None,
    resume: bool = False,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
    stop: StopHook | None = None,
    videos: int = 0,
) -> Path:
    """Roll `policy` out over the planned episodes, appending records to `out`.

    Args:
        env: the (vectorised) environment.
        policy: observation batch -> actions (see `vla_eval.policies.Policy`).
        config: what to run.
        out: the episodes file (JSON Lines).
        policy_id: identifies the policy in the run fingerprint (e.g. a checkpoint
            hash); defaults to ``config.policy_name``.
        resume: continue a run whose `out` already holds some of its episodes; an
            `out` from a different run is refused.
        shard: (i, N): run only batches i, i + N, i + 2N, ...
        progress: show a progress bar (stderr) with the running success rate per split.
        stop: a stopping hook: episodes are taken round by round and the run stops
            after the first batch at which the hook says so. Not with a shard.
        videos: after the run, replay up to this many recorded episodes per (task,
            split), successes and failures, into videos (`vla_eval.online.videos`);
            0 renders nothing.

    Returns:
        The path of the episodes file.
    """
    from vla_eval.episodes import EpisodeWriter
    from vla_eval.locking import output_lock

    out = Path(out)
    if videos:
        from vla_eval.online.frames import video_format

        if videos < 0:
            raise UsageError(f"--videos must be at least 0, got {videos}")
        video_format()  # a missing imageio is said before the run, not after it
    if stop is not None and shard != (0, 1):
        raise UsageError("a stopping rule needs the whole run; it cannot be used with --shard")
    planned = plan(env, config, "seed" if stop is not None else "task")
    batches = shard_batches(planned, shard)
    rid = run_id(env, config, policy_id or config.policy_name)
    with output_lock(out, "episodes file"):
        outcomes = finished_outcomes(out, rid, resume)
        if shard != (0, 1):
            _write_manifest(out, planned, shard, rid, config.policy_name)
            if not batches.positions():
                return out  # more shards than batches: this one owes nothing
        # Only the batches of this shard count (a key of another shard is never re-run).
        positions = batches.positions()
        mine = {k for k in outcomes if (b := planned.batch_of(k)) is not None and b in positions}
        pending = {planned.batch_of(k) for k in mine}
        bar = Progress(batches.episodes(), len(mine), config.policy_name, progress)
        provenance = env_provenance(env)
        if stop is not None:
            stop.begin(len(planned.tasks))
        with EpisodeWriter(out) as writer:
            for position in positions:
                batch = planned[position]
                if not (position in pending and all(w.key in mine for w in batch)):
                    for work, result in rollout_batch(env, policy, batch, config):
                        if work.key in mine:
                            continue  # finished before the interruption; recomputed identically
                        writer.write(episode_record(work, result, config, provenance, rid))
                        bar.add(work.task.split, result["success"])
                        outcomes[work.key] = result["success"]
                if stop is not None and stop.observe((w.key, outcomes[w.key]) for w in batch):
                    break
        bar.close()
        if videos:
            _record_videos(env, policy, config, out, rid, videos)
    return out


def _record_videos(
    env: Env, policy: Callable[..., Any], config: OnlineConfig, out: Path, rid: str, k: int
) -> None:
    """Replay up to `k` recorded episodes per (task, split) into videos beside `out`."""
    from vla_eval.online.videos import record_videos, recorded_episodes, videos_dir

    record_videos(env, policy, config, recorded_episodes(out, rid), k, videos_dir(out))


def _write_manifest(
    out: Path, planned: Plan, shard: tuple[int, int], rid: str, policy: str
) -> None:
    """Record beside `out` which episodes this shard was planned to run (`episodes.manifest`)."""
    from vla_eval.episodes.manifest import ShardManifest, write_manifest

    tasks = tuple((t.name, t.split) for t in planned.tasks)
    manifest = ShardManifest(
        rid, shard, tasks, planned.trials, planned.batch_size, planned.order, policy
    )
    write_manifest(out, manifest)
