"""Offline metrics of a LeRobot policy on a local LeRobotDataset (``offline --dataset DIR``).

Every frame of the dataset is an observation the policy predicts an action chunk from;
the chunk is scored against the actions the dataset recorded from that frame on (steps
past the episode's end are left out). Scoring is the same `OfflineMetrics` as every other
offline report, in the policy's action space min-max normalised to [-1, 1] per dimension
with the dataset's own action statistics (so one binning fits every dimension); L1 and
MSE are also given back in the dataset's action units. The policy's own loss (its
``forward``, the training objective, with training-mode dropout and seeded noise, without
gradients) is averaged over the frames. Observation history comes from the dataset the
way LeRobot's trainer loads it (the config's delta indices). lerobot and torch are
imported only when a dataset is scored; the checks of the directory itself read only its
``meta/info.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.errors import UsageError
from vla_eval.offline.metrics import OfflineMetrics
from vla_eval.offline.output import SCHEMA, format_offline, tokenizer_info

SPLIT = "all"  # a LeRobotDataset has no splits: every frame is scored


def dataset_features(root: str | Path) -> dict[str, Any]:
    """The features a LeRobotDataset directory declares; a UsageError if it is not one or
    has no ``action`` feature to score against."""
    root = Path(root)
    info = root / "meta" / "info.json"
    if not root.is_dir():
        raise UsageError(f"{root}: no such directory (a LeRobotDataset is a directory)")
    if not info.is_file():
        raise UsageError(f"{root} is not a LeRobotDataset: it has no meta/info.json")
    try:
        features = json.loads(info.read_text(encoding="utf-8")).get("features")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{info}: not readable dataset metadata ({exc})") from None
    if not isinstance(features, dict):
        raise UsageError(f"{info} declares no features: not a LeRobotDataset")
    if "action" not in features:
        raise UsageError(
            f"{root} has no 'action' feature to score predictions against (it has "
            f"{', '.join(sorted(features))})"
        )
    return features


def score_dataset(
    root: str | Path,
    policy: Any,
    *,
    bins: int = 256,
    batch_size: int = 32,
    seed: int = 0,
    episodes: list[int] | None = None,
) -> dict[str, Any]:
    """Score ``policy``'s action chunks on a local LeRobotDataset.

    Args:
        root: the dataset directory (``meta/info.json``, ``data/``, ...).
        policy: a `vla_eval.policies.lerobot.LeRobotPolicy`.
        bins: action bins per dimension over the normalised range [-1, 1].
        batch_size: frames per forward pass.
        seed: seeds dropout and sampling noise (diffusion) for the whole pass.
        episodes: the episode indices to score (None: all).

    Returns:
        The ``vla-eval/offline/1`` result (kind ``lerobot-dataset``) without provenance.
    """
    from vla_eval.actions import ActionTokenizer
    from vla_eval.policies.lerobot import LeRobotPolicy

    if not isinstance(policy, LeRobotPolicy):
        raise UsageError("offline --dataset scores LeRobot policies: give --policy lerobot")
    root = Path(root)
    features = dataset_features(root)
    missing = [k for k in policy.config.input_features if k not in features]
    if missing:
        raise UsageError(
            f"the LeRobot policy at {policy.path} needs {missing[0]!r}, which {root} lacks "
            f"(it has {', '.join(sorted(features))})"
        )
    dataset = _open(root, policy, episodes)
    low, high = _action_range(dataset)
    tokenizer = ActionTokenizer(n_bins=bins, low=-1.0, high=1.0)
    names = features["action"].get("names")
    dims = [str(n) for n in names] if _names_fit(names, len(low)) else None
    metrics = OfflineMetrics(tokenizer, dim_names=dims)
    loss = _LossMean()
    traces = _Traces(dims or [f"d{i}" for i in range(len(low))])
    import torch

    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()):
        torch.manual_seed(seed)
        for batch in _batches(dataset, batch_size):
            with torch.inference_mode():
                processed = policy.preprocessor(dict(batch))
                pred, target, valid, tasks = predict_chunks(policy, batch, processed)
                loss.add(*policy_loss(policy, processed), len(tasks))
            scale = lambda a: 2 * (a - low) / (high - low) - 1  # noqa: E731
            metrics.update(scale(target), pred_actions=scale(pred), task=tasks, mask=valid)
            traces.add(batch, scale(pred), scale(target), tasks)
    result = metrics.compute()
    scored = _result(root, dataset, policy, result, loss, tokenizer, (low, high), seed)
    scored["results"][0]["traces"] = traces.traces()
    return scored


def format_dataset(result: dict[str, Any]) -> str:
    """The offline tables, then the policy's loss and L1 in the dataset's action units."""
    last = result["results"][-1]
    lines = [format_offline(result), ""]
    loss = last["policy_loss"]
    if loss["mean"] is not None:
        parts = ", ".join(f"{k} {v:.4f}" for k, v in loss["terms"].items())
        lines.append(
            f"policy loss ({last['policy_type']} training objective): {loss['mean']:.4f}"
            + (f" ({parts})" if parts else "")
        )
    units = last["action_units"]["per_dim"]
    lines.append(
        "in the dataset's action units: "
        + ", ".join(f"{d} L1 {v['l1']:.4g} MSE {v['mse']:.4g}" for d, v in units.items())
    )
    return "\n".join(lines)


# --- the pass over the dataset ---------------------------------------------------------------


def predict_chunks(
    policy: Any, batch: dict[str, Any], processed: dict[str, Any]
) -> tuple[np.ndarray, ...]:
    """The policy's chunk for each frame of a dataset batch, and what the dataset recorded.

    ``processed`` is the batch after the policy's preprocessor (normalised, on its device).

    Returns:
        (pred (B, C, D), target (B, C, D), valid (B, C), tasks (B,)) in action units; the
        target is the dataset's actions from the frame on, valid marks real (not padded) steps.
    """
    import torch

    cfg = policy.config
    policy.policy.eval()
    if cfg.observation_delta_indices is None:
        chunk = policy.policy.predict_action_chunk(processed)
    else:
        chunk = _predict_with_history(policy, processed)
    pred = policy.postprocessor(chunk).detach().to("cpu", torch.float64).numpy()
    start = list(cfg.action_delta_indices).index(0)
    c = pred.shape[1]
    target = batch["action"].to(torch.float64).numpy()[:, start : start + c]
    valid = ~batch["action_is_pad"].numpy()[:, start : start + c]
    if target.shape != pred.shape:
        raise UsageError(
            f"the policy predicts chunks of {c} steps but the dataset gives {target.shape[1]}"
        )
    return pred, target, valid, np.asarray(batch["task"], dtype=object)


def _predict_with_history(policy: Any, processed: dict[str, Any]) -> Any:
    """A history policy (diffusion-like): fill its observation queues as ``select_action``
    would have over the frames the dataset gives, then predict one chunk."""
    import torch

    model, cfg = policy.policy, policy.config
    if not hasattr(model, "_queues"):
        raise UsageError(
            f"offline scoring of {policy.type!r} policies with observation history is not "
            "supported (it supports single-frame policies and queue-based ones like diffusion)"
        )
    from lerobot.policies.utils import populate_queues

    model.reset()
    steps = len(cfg.observation_delta_indices)
    frame: dict[str, Any] = {}
    for s in range(steps):
        frame = {
            k: v[:, s] for k, v in processed.items() if k in cfg.input_features and v.ndim >= 2
        }
        if cfg.image_features:
            frame["observation.images"] = torch.stack(
                [frame[k] for k in cfg.image_features], dim=-4
            )
        model._queues = populate_queues(model._queues, frame)
    chunk = model.predict_action_chunk(frame)
    model.reset()
    return chunk


def policy_loss(policy: Any, processed: dict[str, Any]) -> tuple[float | None, dict[str, float]]:
    """The policy's own loss on a preprocessed batch (its ``forward`` in training mode, called
    without gradients). Buffers that training mode would update (batch-norm statistics) are
    put back.
    """
    model = policy.policy
    buffers = dict(model.named_buffers())
    saved = {k: v.clone() for k, v in model.state_dict().items() if k in buffers}
    model.train()
    try:
        out = model.forward(dict(processed))
    except (NotImplementedError, AttributeError):
        return None, {}
    finally:
        model.eval()
        if saved:
            model.load_state_dict(saved, strict=False)
    loss, terms = out if isinstance(out, tuple) else (out, None)
    extra = {k: float(v) for k, v in (terms or {}).items() if isinstance(v, int | float)}
    return float(loss), extra


class _Traces:
    """Open-loop traces of the first ``n`` episodes: at every frame, the first action of the
    predicted chunk against the recorded one (normalised, like the metrics), laid out as
    `offline.traces` lays them out."""

    def __init__(self, dims: list[str], n: int = 4) -> None:
        self.dims = dims
        self.n = n
        self.by_episode: dict[int, dict[str, Any]] = {}

    def add(self, batch: dict[str, Any], pred: np.ndarray, target: np.ndarray, tasks: Any) -> None:
        episodes = np.asarray(batch["episode_index"]).reshape(-1)
        frames = np.asarray(batch["frame_index"]).reshape(-1)
        for r, ep in enumerate(episodes.tolist()):
            if ep not in self.by_episode and len(self.by_episode) >= self.n:
                continue
            t = self.by_episode.setdefault(
                ep,
                {
                    "task": str(tasks[r]),
                    "split": SPLIT,
                    "episode": ep,
                    "step": [],
                    "true": [],
                    "pred": [],
                },
            )
            t["step"].append(int(frames[r]))
            t["true"].append(target[r, 0].tolist())
            t["pred"].append(pred[r, 0].tolist())

    def traces(self) -> list[dict[str, Any]]:
        return [
            {**t, "instruction": t["task"], "dims": self.dims}
            for _, t in sorted(self.by_episode.items())
        ]


class _LossMean:
    """Frame-weighted mean of per-batch losses (and their named terms)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.frames = 0
        self.terms: dict[str, float] = {}

    def add(self, loss: float | None, terms: dict[str, float], frames: int) -> None:
        if loss is None:
            return
        self.total += loss * frames
        self.frames += frames
        for k, v in terms.items():
            self.terms[k] = self.terms.get(k, 0.0) + v * frames

    def as_dict(self) -> dict[str, Any]:
        n = self.frames
        return {
            "mean": self.total / n if n else None,
            "terms": {k: v / n for k, v in self.terms.items()} if n else {},
            "frames": n,
        }


def _open(root: Path, policy: Any, episodes: list[int] | None) -> Any:
    """The dataset, loading each frame with the history and action chunk the policy needs."""
    try:
        from lerobot.datasets.factory import resolve_delta_timestamps
        from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"scoring a LeRobotDataset needs {exc.name!r}: pip install lerobot"
        ) from None
    repo_id = f"local/{root.name}"
    with contextlib.redirect_stdout(io.StringIO()):
        meta = LeRobotDatasetMetadata(repo_id, root=root)
        deltas = resolve_delta_timestamps(policy.config, meta)
        return LeRobotDataset(repo_id, root=root, episodes=episodes, delta_timestamps=deltas)


def _batches(dataset: Any, batch_size: int) -> Any:
    import torch

    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)


def _action_range(dataset: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (min, max) of the dataset's actions; a constant dimension gets width 2."""
    stats = (dataset.meta.stats or {}).get("action") or {}
    if "min" not in stats or "max" not in stats:
        raise UsageError(f"{dataset.root} has no action statistics (meta/stats.json)")
    low = np.asarray(stats["min"], dtype=np.float64).reshape(-1)
    high = np.asarray(stats["max"], dtype=np.float64).reshape(-1)
    flat = high - low <= 0
    return np.where(flat, low - 1, low), np.where(flat, low + 1, high)


def _names_fit(names: Any, d: int) -> bool:
    return isinstance(names, list) and len(names) == d and all(isinstance(n, str) for n in names)


def _result(
    root: Path,
    dataset: Any,
    policy: Any,
    metrics: dict[str, Any],
    loss: _LossMean,
    tokenizer: Any,
    bounds: tuple[np.ndarray, np.ndarray],
    seed: int,
) -> dict[str, Any]:
    low, high = bounds
    half = (high - low) / 2  # normalised units -> action units
    units = {
        name: {"l1": v["l1"] * half[i], "mse": v["mse"] * half[i] ** 2}
        for i, (name, v) in enumerate(metrics["per_dim"].items())
    }
    scored = {
        "source": str(policy.path),
        "policy_type": policy.type,
        "fingerprint": policy.fingerprint(),
        "metrics": metrics,
        "by_split": {},
        "traces": [],
        "tokenizer": tokenizer_info(tokenizer),
        "policy_loss": loss.as_dict(),
        "action_units": {"low": low.tolist(), "high": high.tolist(), "per_dim": units},
    }
    return {
        "schema": SCHEMA,
        "kind": "lerobot-dataset",
        "data": {
            "kind": "lerobot-dataset",
            "path": str(root),
            "splits": [SPLIT],
            "samples": {SPLIT: len(dataset)},
            "episodes": {SPLIT: int(dataset.num_episodes)},
            "fps": int(dataset.fps),
            "action_space": "min-max normalised to [-1, 1] per dimension (dataset statistics)",
        },
        "seeds": {"scoring": seed},
        "results": [scored],
        "warnings": [],
    }
