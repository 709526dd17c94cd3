"""`run_ray`: an online run on a Ray cluster, with nothing lost and nothing counted twice.

The driver plans the run exactly as the local backend does (`work.plan`: the same
batches, the same fingerprint `work.run_id`), hands whole batches to environment
actors (`actors.EnvWorker`, each building its environment once), and writes every
episode the workers stream back into the one episodes file it owns, locked and
appended one flushed line at a time (`EpisodeWriter`), as the local run does. The
policy runs in its own actor (`actors.PolicyServer`, on GPU with ``policy_gpus``) that
merges the workers' requests into batched calls. A worker that dies (killed, out of
memory, a lost node) has its unfinished batch re-queued to a fresh worker; episodes of
that batch already written are recomputed identically and not written again, so each
episode is recorded exactly once. Since the records and fingerprint are the local
run's, ``resume`` continues a run started by either backend. Ray is imported when a
run starts (the extra ``ray``); numpy, tqdm and the online package otherwise.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_eval.envs.base import Env
from vla_eval.errors import UsageError
from vla_eval.online.config import OnlineConfig
from vla_eval.online.distributed.actors import (
    EnvSpec,
    EnvWorker,
    PolicyInfo,
    PolicyLost,
    PolicyServer,
    PolicySpec,
    build_env,
    policy_needs_env,
)
from vla_eval.online.output import Progress, env_provenance, episode_record
from vla_eval.online.resume import EpisodeKey, finished_outcomes
from vla_eval.online.work import Plan, Work, plan, run_id

#: How often one batch may lose its worker before the run gives up on it.
MAX_LOSSES = 3


@dataclass(frozen=True)
class RayRun:
    """What a Ray run did.

    Attributes:
        out: the episodes file.
        written: episodes this run appended (a resumed run: only the missing ones).
        requeued: plan positions of the batches re-queued after their worker died,
            in the order it happened.
        setup_seconds: starting the actors (environments built, policy loaded).
        run_seconds: from then until the last episode was written.
    """

    out: Path
    written: int
    requeued: tuple[int, ...]
    setup_seconds: float
    run_seconds: float


def run_ray(
    env_spec: EnvSpec,
    policy_spec: PolicySpec,
    config: OnlineConfig,
    out: str | Path,
    *,
    workers: int,
    address: str | None = None,
    policy_gpus: float = 0,
    resume: bool = False,
    progress: bool = True,
    policy_id: str | None = None,
    policy_in_env: bool | None = None,
) -> RayRun:
    """Roll a policy out over the planned episodes on Ray, appending records to `out`.

    Args:
        env_spec: ``(name, options)`` for `vla_eval.envs.factory.make_env`, or a
            picklable callable that builds the environment.
        policy_spec: ``(spec, args)`` for `vla_eval.policies.factory.make_policy`, or a
            picklable callable ``env -> policy`` (a `Policy` or a `NamedPolicy`).
        config: what to run; the same config gives the local run's episodes and fingerprint.
        out: the episodes file (JSON Lines), owned by this process.
        workers: environment actors (one CPU each).
        address: the Ray cluster to join (``ray start --head`` prints it); None joins the
            one this process is already connected to, the one ``RAY_ADDRESS`` names, or
            starts a local one (shut down at the end).
        policy_gpus: GPUs for the policy actor (fractions allowed; 0: CPU).
        resume: continue a run (of either backend) whose `out` holds some of its episodes.
        progress: show a progress bar (stderr).
        policy_id: the policy's identity in the run fingerprint; default: the one the
            policy factory gives (a checkpoint's hash), else ``config.policy_name``.
        policy_in_env: build the policy inside each environment worker instead of in
            its own actor. Default: yes without GPUs (on CPUs a separate policy actor
            only adds a round trip per step: +70% time per episode for TinyVLA on 2
            cores, against -6% inside the workers) and for policies that read the
            simulator's state (the ``expert`` spec); a policy actor with batched
            inference when ``policy_gpus`` is given.
    """
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if policy_gpus < 0:
        raise UsageError(f"--policy-gpus must be 0 or more, got {policy_gpus}")
    if policy_in_env is None:
        policy_in_env = policy_needs_env(policy_spec) or not policy_gpus
    if policy_gpus and policy_in_env:
        raise UsageError(
            "--policy-gpus: this policy runs inside each environment worker (it reads the simulator)"
        )
    ray = import_ray()
    out = Path(out)
    env = build_env(env_spec)  # the driver's copy: the plan, the fingerprint, the provenance
    planned = plan(env, config)  # a bad split or task is refused before Ray starts
    make_pool = functools.partial(
        Pool, ray, env_spec, policy_spec, config, workers, policy_gpus, policy_in_env
    )
    from vla_eval.locking import output_lock

    try:
        with output_lock(out, "episodes file"):
            if not resume:  # refuse an existing file before starting any actor
                finished_outcomes(out, "", resume)
            started = connect(ray, address)
            try:
                return drive(ray, env, planned, make_pool, config, out, resume, progress, policy_id)
            finally:
                if started:
                    ray.shutdown()
    finally:
        close = getattr(env, "close", None)
        if close is not None:
            close()


def drive(
    ray: Any,
    env: Env,
    planned: Plan,
    make_pool: Callable[[], Pool],
    config: OnlineConfig,
    out: Path,
    resume: bool,
    progress: bool,
    policy_id: str | None,
) -> RayRun:
    """Start the actors, run every batch with a missing episode, end the actors."""
    start = time.perf_counter()
    pool = make_pool()
    ready = time.perf_counter()
    try:
        rid = run_id(env, config, policy_id or pool.info.policy_id or config.policy_name)
        done = set(finished_outcomes(out, rid, resume))
        todo = [p for p in range(len(planned)) if any(w.key not in done for w in planned[p])]
        with Sink(out, planned, config, env_provenance(env), rid, done, progress) as sink:
            requeued = Dispatcher(ray, pool, sink, out).run(todo)
        end = time.perf_counter()
    finally:
        pool.close()
    return RayRun(out, sink.written, tuple(requeued), ready - start, end - ready)


def import_ray() -> Any:
    """The ray module, or a UsageError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'vla-eval[ray]'") from None
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join (or start) a Ray cluster; True when this call started the connection."""
    if ray.is_initialized():
        return False
    if address is not None:
        check_reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    except ConnectionError as exc:
        raise UsageError(f"--ray-address {address}: cannot connect ({exc})") from None
    return True


def check_reachable(address: str) -> None:
    """Refuse a ``HOST:PORT`` nothing listens on at once (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", a ray:// client address: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(
            f"--ray-address {address}: cannot reach it ({exc.strerror or exc}); "
            "is `ray start --head` running there?"
        ) from None


class Pool:
    """The run's actors: the policy server(s) and the environment workers, with spares on demand.

    A stateless policy gets one server shared by every worker (its requests merged
    into batched calls); a stateful one (it has ``reset``) gets one server per worker.
    A policy that reads the simulator (``in_env``: the scripted expert) is built inside
    each worker instead.
    """

    def __init__(
        self,
        ray: Any,
        env_spec: EnvSpec,
        policy_spec: PolicySpec,
        config: OnlineConfig,
        workers: int,
        policy_gpus: float,
        in_env: bool,
    ) -> None:
        self.ray, self.env_spec, self.policy_spec, self.config = ray, env_spec, policy_spec, config
        self.tag = f"vla-eval-{os.getpid()}"
        self.servers: list[Any] = []
        self.workers: list[Any] = []
        self.spawned = 0
        check_resources(ray, workers, 0 if in_env else policy_gpus)
        self.info = PolicyInfo(None, False)
        if not in_env:
            self.servers.append(self.server(0, policy_gpus))
            self.info = unwrap(ray, lambda: ray.get(self.servers[0].describe.remote()))
            if self.info.stateful:
                check_resources(ray, workers, policy_gpus * workers)
                self.servers += [self.server(i, policy_gpus) for i in range(1, workers)]
        self.workers = [self.worker(i) for i in range(workers)]
        infos = unwrap(ray, lambda: ray.get([w.ready.remote() for w in self.workers]))
        if in_env:
            self.info = infos[0]

    def server(self, index: int, gpus: float) -> Any:
        actor = self.ray.remote(PolicyServer).options(
            name=f"{self.tag}-policy-{index}",
            num_cpus=0,  # it shares the workers' CPUs; its share of the work is the model
            num_gpus=gpus,
            max_restarts=3,
            max_task_retries=3,
        )
        return actor.remote(self.env_spec, self.policy_spec)

    def worker(self, index: int) -> Any:
        """A fresh environment worker for slot `index` (named ``<tag>-env-<index>.<n>``)."""
        self.spawned += 1
        actor = self.ray.remote(EnvWorker).options(
            name=f"{self.tag}-env-{index}.{self.spawned}", num_cpus=1, max_restarts=0
        )
        server = self.servers[index % len(self.servers)] if self.servers else None
        spec = None if server is not None else self.policy_spec
        return actor.remote(self.env_spec, self.config, "task", server, spec, self.info.stateful)

    def replace(self, index: int) -> None:
        """Swap slot `index`'s (dead) worker for a fresh one."""
        self.ray.kill(self.workers[index], no_restart=True)
        self.workers[index] = self.worker(index)

    def close(self) -> None:
        """Let every actor close what it holds, then end them."""
        actors = self.workers + self.servers
        try:
            self.ray.get([a.close.remote() for a in actors], timeout=30)
        except (self.ray.exceptions.RayActorError, self.ray.exceptions.GetTimeoutError):
            pass  # a dead or stuck actor has nothing to close; it is ended below either way
        for actor in actors:
            self.ray.kill(actor, no_restart=True)


def check_resources(ray: Any, workers: int, gpus: float) -> None:
    """Refuse a run the cluster can never schedule (it would wait for ever)."""
    have = ray.cluster_resources()
    if have.get("CPU", 0) < workers:
        raise UsageError(
            f"--workers {workers} needs {workers} CPUs; the Ray cluster has {have.get('CPU', 0):g}"
        )
    if gpus and have.get("GPU", 0) < gpus:
        raise UsageError(
            f"--policy-gpus needs {gpus:g} GPUs in all; the Ray cluster has {have.get('GPU', 0):g}"
        )


def unwrap(ray: Any, call: Any) -> Any:
    """Run `call`, turning an actor's UsageError back into itself (one line, no traceback)."""
    try:
        return call()
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, UsageError):
            raise exc.cause from None
        raise


@dataclass
class Sink:
    """The driver's end: each streamed episode written once, with the local run's record."""

    out: Path
    planned: Plan
    config: OnlineConfig
    provenance: dict[str, Any]
    run_id: str
    done: set[EpisodeKey]
    progress: bool
    written: int = 0
    _writer: Any = field(default=None, repr=False)
    _bar: Any = field(default=None, repr=False)

    def __enter__(self) -> Sink:
        from vla_eval.episodes import EpisodeWriter

        self._bar = Progress(
            self.planned.episodes, len(self.done), self.config.policy_name, self.progress
        )
        self._writer = EpisodeWriter(self.out)
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()
        self._bar.close()

    def batch(self, position: int) -> dict[EpisodeKey, Work]:
        return {w.key: w for w in self.planned[position]}

    def add(self, works: dict[EpisodeKey, Work], key: EpisodeKey, result: dict[str, Any]) -> None:
        """Write one finished episode, unless it is already in the file."""
        key = (key[0], key[1], int(key[2]))
        if key not in works:
            raise RuntimeError(f"a worker returned episode {key}, which its batch does not hold")
        if key in self.done:
            return  # written before a worker died or before a resume; recomputed identically
        work = works[key]
        self._writer.write(episode_record(work, result, self.config, self.provenance, self.run_id))
        self.done.add(key)
        self.written += 1
        self._bar.add(work.task.split, result["success"])


class Dispatcher:
    """Keeps every worker busy with one batch; re-queues the batch of a worker that dies."""

    def __init__(self, ray: Any, pool: Pool, sink: Sink, out: Path) -> None:
        self.ray, self.pool, self.sink, self.out = ray, pool, sink, out
        self.losses: Counter[int] = Counter()
        self.requeued: list[int] = []
        # stream -> (worker slot, batch position, the batch's works)
        self.running: dict[Any, tuple[int, int, dict[EpisodeKey, Work]]] = {}

    def run(self, todo: list[int]) -> list[int]:
        """Run the batches at plan positions `todo`; returns the re-queued positions."""
        queue = deque(todo)
        idle = deque(range(len(self.pool.workers)))
        while queue or self.running:
            while queue and idle:
                slot, position = idle.popleft(), queue.popleft()
                call = self.pool.workers[slot].run_batch.options(num_returns="streaming")
                self.running[call.remote(position)] = (slot, position, self.sink.batch(position))
            [stream], _ = self.ray.wait(list(self.running), num_returns=1)
            slot, position, works = self.running[stream]
            state = self.drain(stream, position, works)
            if state == "running":
                continue
            del self.running[stream]
            if state == "worker lost":
                self.pool.replace(slot)
            if state != "finished":
                queue.appendleft(position)
            idle.append(slot)
        return self.requeued

    def drain(self, stream: Any, position: int, works: dict[EpisodeKey, Work]) -> str:
        """Write the episodes `stream` has ready: ``running`` (more to come), ``finished``,
        ``worker lost`` or ``policy lost`` (the batch is to be re-run)."""
        try:
            while True:
                try:
                    ref = next(stream)
                except StopIteration:
                    return "finished"
                key, result = self.ray.get(ref)
                self.sink.add(works, key, result)
                if not self.ray.wait([stream], timeout=0)[0]:
                    return "running"
        except self.ray.exceptions.RayTaskError as exc:
            if not isinstance(exc.cause, PolicyLost):
                raise self.task_error(exc) from None
            self.lost(position, "its stateful policy's actor restarted")
            return "policy lost"
        except self.ray.exceptions.RayActorError as exc:
            self.lost(position, f"its environment worker died ({type(exc).__name__})")
            return "worker lost"

    def lost(self, position: int, why: str) -> None:
        self.losses[position] += 1
        if self.losses[position] >= MAX_LOSSES:
            raise UsageError(
                f"batch {position} failed {MAX_LOSSES} times ({why}); the episodes so far are "
                f"in {self.out}: fix the cause and rerun with --resume"
            )
        self.requeued.append(position)
        print(f"ray: batch {position} is re-queued: {why}", file=sys.stderr)

    def task_error(self, exc: Any) -> BaseException:
        """What to raise for an error inside a worker: its UsageError as itself (one line:
        the rollout tells a failing or lost policy as one), anything else as Ray gives it."""
        return exc.cause if isinstance(exc.cause, UsageError) else exc
