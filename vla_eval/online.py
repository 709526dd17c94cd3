"""Online evaluation: roll a policy out over every (task, split, seed), write episodes.

The work is a fixed list of episodes — every task of the requested splits x seeds
0..N-1, the same seeds for every policy so comparisons can be paired — cut into
fixed batches that step together (vectorised environments, one batched policy call
per step). Each finished episode is appended to the episodes file at once (one
flushed line), so a run killed at any moment loses at most the episodes in flight.
`resume` re-runs only the batches with missing episodes, with the same batch
composition as the first time, so the resumed file holds exactly the episodes of an
uninterrupted run; `shard` (i, N) takes every N-th batch, so the union of N shards
is the full run.

A policy is any callable from an observation batch to actions: it is not tied to
this project's checkpoints (see `Policy`). This module imports numpy and tqdm only;
torch enters through the policy.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from vla_eval.envs.base import Env, Task
from vla_eval.errors import UsageError

SCHEMA = "vla-eval/online/1"

ChunkMode = Literal["open-loop", "ensemble"]


class Policy(Protocol):
    """What `rollout` needs from a policy.

    Called with an observation batch ``{"image": (N, H, W, 3) uint8, "state": (N, S),
    "instruction": list[str]}`` (whatever the environment observes) plus
    ``"env_index"`` (N,): which of the batch's environments each row is (only
    environments that need a new action are asked). It returns actions as ``(N, D)``
    or an action chunk ``(N, C, D)``. It may also have a ``reset(n)`` method, called
    after the environments of a batch of n episodes are reset, for policies with
    memory.
    """

    def __call__(self, obs: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class OnlineConfig:
    """What to roll out and how.

    Attributes:
        trials: episodes per (task, split); seeds 0..trials-1.
        splits: which splits to evaluate.
        tasks: task names to evaluate (None: all of the environment's).
        max_steps: step limit per episode (None: the environment's own limit).
        batch_size: episodes stepped together.
        chunk_mode: how an action chunk (N, C, D) is executed: ``open-loop`` runs
            `execute` actions of each chunk before asking again; ``ensemble`` asks
            every step and averages all predictions for the current step with
            weights exp(-ensemble_decay * age), oldest first (ACT's temporal
            ensembling, Zhao et al. 2023).
        execute: actions executed per chunk in open-loop mode (None: the whole chunk).
        ensemble_decay: the m of the ensembling weights.
        record_actions: write each episode's executed actions (for jitter diagnosis).
        policy_name: written into every record as ``policy``.
    """

    trials: int = 50
    splits: tuple[str, ...] = ("seen", "unseen")
    tasks: tuple[str, ...] | None = None
    max_steps: int | None = None
    batch_size: int = 64
    chunk_mode: ChunkMode = "open-loop"
    execute: int | None = None
    ensemble_decay: float = 0.01
    record_actions: bool = False
    policy_name: str = "policy"

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {self.trials}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_steps is not None and self.max_steps < 1:
            raise UsageError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.chunk_mode not in ("open-loop", "ensemble"):
            raise UsageError(f"unknown chunk mode {self.chunk_mode!r}; use open-loop or ensemble")
        if self.execute is not None and self.execute < 1:
            raise UsageError(f"--execute must be at least 1, got {self.execute}")
        if not self.splits:
            raise UsageError("no splits to evaluate")


@dataclass(frozen=True)
class Work:
    """One episode to run."""

    task: Task
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.task.name, self.task.split, self.seed)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N."""
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text}: need 0 <= i < N")
    return i, n


def select_tasks(env: Env, config: OnlineConfig) -> list[Task]:
    """The environment's tasks in the requested splits (and names), in a fixed order."""
    available_splits = sorted({t.split for t in env.tasks})
    for split in config.splits:
        if split not in available_splits:
            raise UsageError(
                f"unknown split {split!r} for {env.name}; available: {', '.join(available_splits)}"
            )
    names = sorted({t.name for t in env.tasks})
    if config.tasks is not None:
        for name in config.tasks:
            if name not in names:
                raise UsageError(
                    f"unknown task {name!r} for {env.name}; available: {', '.join(names)}"
                )
    chosen = [
        t
        for t in env.tasks
        if t.split in config.splits and (config.tasks is None or t.name in config.tasks)
    ]
    if not chosen:
        raise UsageError("no task matches the requested tasks and splits")
    return sorted(chosen, key=lambda t: (config.splits.index(t.split), t.name))


def plan(env: Env, config: OnlineConfig) -> list[list[Work]]:
    """The full run as fixed batches: every chosen task x seed, batch_size at a time.

    Batches never mix tasks' order between runs: the list depends only on the
    environment's tasks and the config, so a resumed or sharded run sees the same
    batches.
    """
    work = [Work(t, s) for t in select_tasks(env, config) for s in range(config.trials)]
    b = config.batch_size
    return [work[i : i + b] for i in range(0, len(work), b)]


def run_id(env: Env, config: OnlineConfig, policy_id: str) -> str:
    """A short fingerprint of everything that determines the episodes of a run."""
    fields = asdict(config)
    fields.pop("batch_size")  # does not change episodes (see `plan`); kept out so it can be tuned
    fields.pop("record_actions")
    blob = json.dumps(
        {"env": env.name, "version": env.version, "policy": policy_id, "config": fields},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def env_provenance(env: Env, packages: Sequence[str] = ("numpy",)) -> dict[str, Any]:
    """Name, version and simulator package versions of an environment."""
    from vla_eval.results import versions

    extra = tuple(getattr(env, "packages", ())) or tuple(packages)
    return {"name": env.name, "version": env.version, "packages": versions(*extra)}


class _ChunkExecutor:
    """Turns a policy's action chunks into one action per env per step."""

    def __init__(self, n: int, config: OnlineConfig) -> None:
        self.n = n
        self.config = config
        self.queue: np.ndarray | None = None  # open loop: (n, C, D) remaining actions
        self.left = np.zeros(n, np.int64)  # open loop: actions left in each env's chunk
        self.pos = np.zeros(n, np.int64)  # open loop: index of the next action in each chunk
        self.history: list[tuple[int, np.ndarray]] = []  # ensemble: (start step, (n, C, D))

    def needs_query(self) -> np.ndarray:
        if self.config.chunk_mode == "ensemble":
            return np.ones(self.n, bool)
        return self.left == 0

    def push(self, rows: np.ndarray, chunk: np.ndarray, t: int) -> None:
        c = chunk.shape[1]
        if self.config.chunk_mode == "ensemble":
            full = np.full((self.n, c, chunk.shape[2]), np.nan)
            full[rows] = chunk
            self.history.append((t, full))
            self.history = [(s, h) for s, h in self.history if s + h.shape[1] > t]
            return
        if self.queue is None:
            self.queue = np.zeros((self.n, c, chunk.shape[2]))
        execute = min(self.config.execute or c, c)
        self.queue[rows, :execute] = chunk[:, :execute]
        self.pos[rows] = 0
        self.left[rows] = execute

    def next(self, t: int) -> np.ndarray:
        if self.config.chunk_mode == "ensemble":
            m = self.config.ensemble_decay
            num = 0.0
            den = 0.0
            for age, (start, h) in enumerate(self.history):  # oldest first: age 0
                preds = h[:, t - start]
                w = math.exp(-m * age)
                ok = ~np.isnan(preds[:, 0])
                num = num + np.where(ok[:, None], w * np.nan_to_num(preds), 0.0)
                den = den + np.where(ok, w, 0.0)
            return num / np.maximum(den, 1e-12)[:, None]
        rows = np.arange(self.n)
        queue = self.queue
        assert queue is not None  # a query always precedes the first action
        action = queue[rows, np.minimum(self.pos, queue.shape[1] - 1)]
        moving = self.left > 0  # finished episodes are no longer asked; they stay put
        self.pos = self.pos + moving
        self.left = self.left - moving
        return action


def _as_chunk(actions: Any, n: int, action_dim: int) -> np.ndarray:
    if hasattr(actions, "detach"):
        actions = actions.detach().cpu().numpy()
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] != n or a.shape[2] != action_dim:
        raise UsageError(
            f"the policy returned actions of shape {tuple(np.shape(actions))}; the environment "
            f"needs ({n}, {action_dim}) or ({n}, chunk, {action_dim})"
        )
    if not np.all(np.isfinite(a)):
        raise UsageError("the policy returned NaN or infinite actions")
    return a


def rollout_batch(
    env: Env,
    policy: Callable[[dict[str, Any]], Any],
    batch: Sequence[Work],
    config: OnlineConfig,
) -> Iterable[tuple[Work, dict[str, Any]]]:
    """Run one batch of episodes to the end; yields (work, result) as each finishes.

    The result has ``success``, ``steps``, ``return``, ``instruction`` (when the
    environment gives one) and, if configured, ``actions``.
    """
    n = len(batch)
    obs = env.reset([w.seed for w in batch], [w.task for w in batch])
    instructions = obs.get("instruction")
    if hasattr(policy, "reset"):
        policy.reset(n)
    executor = _ChunkExecutor(n, config)
    limit = np.array(
        [config.max_steps or getattr(w.task.spec, "max_steps", None) or 10**9 for w in batch]
    )
    done = np.zeros(n, bool)
    success = np.zeros(n, bool)
    returns = np.zeros(n)
    steps = np.zeros(n, np.int64)
    actions_log: list[list[list[float]]] = [[] for _ in range(n)]
    t = 0
    while not done.all():
        ask = executor.needs_query() & ~done
        if ask.any():
            rows = np.flatnonzero(ask)
            sub = {
                k: (v[rows] if hasattr(v, "shape") else [v[i] for i in rows])
                for k, v in obs.items()
            }
            sub["env_index"] = rows
            chunk = _as_chunk(policy(sub), len(rows), env.action_dim)
            executor.push(rows, chunk, t)
        action = executor.next(t)
        action = np.where(done[:, None], 0.0, action)
        obs, reward, env_done, info = env.step(action)
        live = ~done
        returns[live] += np.asarray(reward, dtype=np.float64)[live]
        steps[live] += 1
        success |= np.asarray(info["success"], bool) & live
        if config.record_actions:
            for i in np.flatnonzero(live):
                actions_log[i].append([round(float(x), 6) for x in action[i]])
        finished = live & (np.asarray(env_done, bool) | (steps >= limit))
        for i in np.flatnonzero(finished):
            result = {
                "success": bool(success[i]),
                "steps": int(steps[i]),
                "return": float(returns[i]),
            }
            if instructions is not None:
                result["instruction"] = str(instructions[i])
            if config.record_actions:
                result["actions"] = actions_log[i]
            yield batch[i], result
        done |= finished
        t += 1


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
) -> Path:
    """Roll `policy` out over the planned episodes, appending records to `out`.

    Args:
        env: the (vectorised) environment.
        policy: observation batch -> actions (see `Policy`).
        config: what to run.
        out: the episodes file (JSON Lines).
        policy_id: identifies the policy in the run fingerprint (e.g. a checkpoint
            hash); defaults to ``config.policy_name``.
        resume: continue a run whose `out` already holds some of its episodes; an
            `out` from a different run is refused.
        shard: (i, N): run only batches i, i + N, i + 2N, ...
        progress: show a progress bar (stderr) with the running success rate per split.

    Returns:
        The path of the episodes file.
    """
    from vla_eval.episodes import EpisodeWriter, read_episodes

    out = Path(out)
    batches = plan(env, config)
    index, count = shard
    batches = [b for i, b in enumerate(batches) if i % count == index]
    rid = run_id(env, config, policy_id or config.policy_name)

    done_keys: set[tuple[str, str, int]] = set()
    if out.exists() and out.stat().st_size > 0:
        if not resume:
            raise UsageError(
                f"{out} already exists; pass --resume to continue it, or choose another --out"
            )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the writer reports a truncated line itself
            existing = read_episodes([out])
        for ep in existing:
            if ep.extra.get("run") != rid:
                raise UsageError(
                    f"{out} holds episodes of a different run (run {ep.extra.get('run')!r}, this "
                    f"run is {rid!r}: another policy, environment version or setting); "
                    "choose another --out"
                )
            done_keys.add((ep.task, ep.split, ep.seed))

    todo = [b for b in batches if any(w.key not in done_keys for w in b)]
    total = sum(len(b) for b in batches)
    provenance = env_provenance(env)
    tally: dict[str, list[int]] = {}

    from tqdm import tqdm

    bar = tqdm(
        total=total,
        initial=sum(1 for b in batches for w in b if w.key in done_keys),
        desc=f"online {config.policy_name}",
        unit="ep",
        disable=not progress,
        file=sys.stderr,
    )
    with EpisodeWriter(out) as writer:
        for batch in todo:
            for work, result in rollout_batch(env, policy, batch, config):
                if work.key in done_keys:
                    continue  # finished before the interruption; recomputed identically
                record = {
                    "policy": config.policy_name,
                    "task": work.task.name,
                    "split": work.task.split,
                    "seed": work.seed,
                    "success": result["success"],
                    "steps": result["steps"],
                    "return": result["return"],
                    "env": {**provenance, "seed": work.seed, "task": work.task.key},
                    "run": rid,
                }
                for key in ("instruction", "actions"):
                    if key in result:
                        record[key] = result[key]
                writer.write(record)
                done_keys.add(work.key)
                s = tally.setdefault(work.task.split, [0, 0])
                s[0] += int(result["success"])
                s[1] += 1
                bar.set_postfix({k: f"{v[0]}/{v[1]}" for k, v in tally.items()}, refresh=False)
                bar.update(1)
    bar.close()
    return out


class CheckpointPolicy:
    """A TinyVLA checkpoint behind the `Policy` interface (imports torch when built).

    Observations need ``image`` (N, 64, 64, 3) uint8, ``state`` and ``instruction``;
    returns action chunks (N, H, D) decoded at the bin centres.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import torch

        from vla_eval.envs.text import TextTokenizer
        from vla_eval.trainer.checkpoint import load_policy

        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer, ckpt = load_policy(path)
        recipe = ckpt.get("recipe") or {}
        vocab = recipe.get("text_vocab") if isinstance(recipe, dict) else None
        self.text = TextTokenizer(vocab) if vocab else TextTokenizer()
        self.step = int(ckpt["step"])
        self.action_dim = int(self.model.config.action_dim)
        self.path = Path(path)
        self._torch = torch

    def fingerprint(self) -> str:
        """sha256 of the checkpoint file (identifies the policy across runs)."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:16]

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        torch = self._torch
        if "image" not in obs:
            raise UsageError(
                "this checkpoint's policy needs image observations; the environment gives "
                f"only {', '.join(k for k in obs if k != 'env_index')}"
            )
        cfg = self.model.config
        ids = self.text.encode(list(obs["instruction"]), length=cfg.max_text_len)
        state = obs.get("state")
        state_t = None
        if cfg.state_dim:
            if state is None or np.shape(state)[1] != cfg.state_dim:
                raise UsageError(
                    f"the checkpoint expects a {cfg.state_dim}-D state; the environment gives "
                    f"{None if state is None else np.shape(state)[1]}"
                )
            state_t = torch.from_numpy(np.asarray(state, dtype=np.float32))
        return self.model.predict_actions(
            torch.from_numpy(np.ascontiguousarray(obs["image"])),
            torch.from_numpy(ids),
            state_t,
            self.tokenizer,
        )


def make_env(name: str) -> Env:
    """An environment by name: ``tabletop`` (built in) or ``metaworld`` (MT10; extra `sim`)."""
    if name == "tabletop":
        from vla_eval.envs.tabletop import TabletopEnv

        return TabletopEnv()
    if name in ("metaworld", "metaworld-mt10", "metaworld-ml10"):
        from vla_eval.envs.metaworld import MetaWorldEnv

        return MetaWorldEnv("ML10" if name.endswith("ml10") else "MT10")
    raise UsageError(f"unknown environment {name!r}; choose tabletop, metaworld or metaworld-ml10")
