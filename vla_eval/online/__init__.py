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

A policy is any callable from an observation batch to actions (the contract is
`vla_eval.policies.Policy`: ``reset(env_indices)`` and ``close()`` optional); it is not
tied to this project's checkpoints. A policy that raises stops the run with a
`PolicyError`, keeping every recorded episode. Modules: `config` (`OnlineConfig`),
`work` (the planned episodes, batches, shards, fingerprint), `chunks` (action chunk
execution), `rollout` (one batch's step loop), `resume`, `output` (records, progress),
`runner` (`run`, and the `StopHook` a stopping rule such as
`vla_eval.stats.stopping.Stopper` plugs into), `videos` and `frames` (``--videos``:
chosen recorded episodes replayed into MP4 files). This package imports numpy and tqdm
only (imageio for videos), never the trainer or torch; torch enters through the policy.
"""

from vla_eval.online.config import SCHEMA, ChunkMode, OnlineConfig
from vla_eval.online.output import env_provenance, episode_record
from vla_eval.online.rollout import PolicyError, rollout_batch
from vla_eval.online.runner import StopHook, run
from vla_eval.online.work import Work, parse_shard, plan, run_id, select_tasks, shard_batches
from vla_eval.policies.base import Policy

__all__ = [
    "SCHEMA",
    "ChunkMode",
    "OnlineConfig",
    "Policy",
    "PolicyError",
    "StopHook",
    "Work",
    "env_provenance",
    "episode_record",
    "parse_shard",
    "plan",
    "rollout_batch",
    "run",
    "run_id",
    "select_tasks",
    "shard_batches",
]
