"""Protocol files: TOML -> frozen dataclasses, and the runs they describe.

A protocol names a training run (`[train]`, mapped onto `TrainConfig`), how its
policy is evaluated (`[evaluate]`), and, for an experiment, the variants to compare
(`[experiment]`). Reading is strict: an unknown key, a wrong type or a missing
section is a `UsageError` naming the key and the file. Depends on `vla_eval.config`
and the torch-free config dataclasses of the trainer and the experiment: reading a
protocol must never import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_eval.config import from_dict, read_toml
from vla_eval.envs.base import SPLITS
from vla_eval.errors import UsageError
from vla_eval.experiment.config import ExperimentConfig
from vla_eval.trainer.config import TrainConfig

SCHEMA = "vla-eval/protocol/1"
MAX_TRIALS = 1_000_000  # online episodes per (task, split)
MAX_BASE_DEPTH = 16  # protocols laid over protocols


@dataclass(frozen=True)
class EvaluateConfig:
    """How a trained policy is evaluated.

    Attributes:
        trials: online episodes per (task, split), seeds 0..trials-1.
        splits: splits to roll out.
        execute: actions of each predicted chunk executed before asking again.
        chunk_mode: ``open-loop`` or ``ensemble`` (temporal ensembling).
        batch_size: episodes stepped together.
        offline: also score held-out demonstrations offline.
    """

    trials: int = 25
    splits: tuple[str, ...] = ("seen", "unseen")
    execute: int = 4
    chunk_mode: str = "open-loop"
    batch_size: int = 100
    offline: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.trials <= MAX_TRIALS:
            raise UsageError(f"evaluate.trials must be from 1 to {MAX_TRIALS:,}, got {self.trials}")
        if not 1 <= self.batch_size <= 65_536 or not 1 <= self.execute <= 10_000:
            raise UsageError("evaluate.batch_size must be 1-65,536 and evaluate.execute 1-10,000")
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown or not self.splits or len(set(self.splits)) != len(self.splits):
            raise UsageError(
                f"evaluate.splits must be distinct names among {', '.join(SPLITS)} (the "
                f"built-in world's splits), got {list(self.splits)}"
            )
        if self.chunk_mode not in ("open-loop", "ensemble"):
            raise UsageError(
                f"evaluate.chunk_mode must be open-loop or ensemble, got {self.chunk_mode!r}"
            )


@dataclass(frozen=True)
class Protocol:
    """A protocol file: one training run and its evaluation (and maybe an experiment)."""

    name: str
    train: TrainConfig
    description: str = ""
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    experiment: ExperimentConfig | None = None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_with_base(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's tables laid over those of its ``base`` protocol (a path relative to it)."""
    raw = read_toml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise UsageError(f"{path}: base must be a protocol file name, got {base!r}")
    try:
        base_path = (path.parent / base).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise UsageError(f"{path}: base {base!r} cannot be resolved ({exc})") from None
    if len(seen) >= MAX_BASE_DEPTH:
        raise UsageError(f"{path}: more than {MAX_BASE_DEPTH} base protocols in a chain")
    if base_path in seen:
        raise UsageError(f"{path}: base protocols refer to each other in a cycle")
    inherited = _read_with_base(base_path, (*seen, path.resolve()))
    for key in ("name", "description", "experiment"):  # these belong to the file itself
        inherited.pop(key, None)
    return _merge(inherited, raw)


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate a protocol file.

    A protocol may start from another one: ``base = "quickstart.toml"`` takes that
    file's ``[train]`` and ``[evaluate]`` tables and lays this file's values over them.

    Raises:
        UsageError: missing file, invalid TOML, an unknown key or a wrong type
            (the message names the key and the file).
    """
    path = Path(path)
    raw = _read_with_base(path)
    if "train" not in raw:
        raise UsageError(f"{path}: missing required section [train]")
    if "name" not in raw:
        raw = {**raw, "name": path.stem}
    train = raw.get("train")
    if isinstance(train, dict) and "name" not in train:
        raw["train"] = {**train, "name": raw["name"]}
    return from_dict(Protocol, raw, str(path))
