"""The episode record: one rollout of a policy on a task with a seed, and its outcome.

Defines the versioned JSON Lines record (`Episode`, schema ``vla-eval/episode/1``)
and `check_fields`, the one validation every writer and reader applies, naming the
file and line of anything wrong. Standard library only; never imports numpy or torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vla_eval.errors import DataError

SCHEMA = "vla-eval/episode/1"
REQUIRED = ("task", "split", "seed", "success")
# Keys the record defines; anything else a writer adds is kept in `Episode.extra`.
_KNOWN = frozenset({"schema", "policy", *REQUIRED, "steps", "return", "instruction", "env"})


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
        check_fields(self.to_dict(), "episode")

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
        check_fields(record, where)
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


def check_fields(rec: Mapping[str, Any], where: str) -> None:
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
    group = rec.get("group")
    if group is not None and (not isinstance(group, str) or not group):
        raise DataError(f"{where}: 'group' must be a non-empty string, got {group!r}")
    env = rec.get("env")
    if env is not None and not isinstance(env, Mapping):
        raise DataError(f"{where}: 'env' must be an object, got {env!r}")
