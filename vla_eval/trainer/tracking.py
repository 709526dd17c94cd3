"""The training run's experiment tracker: opened before training, fed by the loop's hooks.

`open_run_tracker` starts the tracker a `TrainConfig` names (or returns None) before any
data is built, so a missing library or an unreachable server stops the run with one line
before it trains. `TrackerCallback` is an ordinary `Callback`: every metrics line becomes
scalars at its step (``train/loss``, ``train/lr``, ``train/grad_norm``,
``train/loss_per_task/<task>``, ... and ``eval/...`` for the held-out evaluation), each
stage change a text entry, each Diagnose finding its event at the step it was seen, and
the end of the run closes it. Depends on the trackers and the trainer's torch-free
config; never on torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla_eval.trackers import Tracker, numbers, open_tracker
from vla_eval.trainer.config import TrainConfig

#: Fields of a metrics line that come from the held-out evaluation (logged as eval/...).
EVAL_FIELDS = ("heldout_loss", "web_loss", "web_accuracy", "web_examples", "heldout")
#: Fields that are not measurements.
SKIP_FIELDS = ("step", "stage")


def open_run_tracker(config: TrainConfig, out: Path, resume_step: int | None) -> Tracker | None:
    """The tracker `config.tracker` names, started for the run in `out` (None: none).

    Raises:
        UsageError: the tracker's library is missing or its server cannot be reached.
    """
    from vla_eval.trainer.run_dir import config_dict

    settings = config.tracker
    if settings.name == "none":
        return None
    return open_tracker(
        settings.name,
        out,
        uri=settings.uri,
        project=settings.project,
        run_name=config.name,
        config=config_dict(config),
        resume_step=resume_step,
    )


def step_scalars(record: dict[str, Any]) -> dict[str, float]:
    """A metrics line's numbers as tracker scalars: ``train/...`` and ``eval/...``.

    >>> step_scalars({"step": 3, "stage": "align", "loss": 2.5, "heldout_loss": "nan",
    ...               "loss_per_task": {"pick": 2.0}})
    {'train/loss': 2.5, 'train/loss_per_task/pick': 2.0, 'eval/heldout_loss': nan}
    """
    train = {k: v for k, v in record.items() if k not in (*EVAL_FIELDS, *SKIP_FIELDS)}
    evals = {k: v for k, v in record.items() if k in EVAL_FIELDS}
    return {**numbers(train, "train"), **numbers(evals, "eval")}


class TrackerCallback:
    """Feeds a `Tracker` from the training loop (a `Callback`; closes it at the end)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self._stage: str | None = None

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        at = int(metrics.get("step", step - 1))  # the metrics line's own (0-based) step
        stage = metrics.get("stage")
        if isinstance(stage, str) and stage != self._stage:
            self.tracker.log_text("train/stage", f"stage **{stage}** from step {at}", at)
            self._stage = stage
        self.tracker.log_scalars(step_scalars(metrics), at)

    def on_evaluate(self, step: int, metrics: dict[str, Any]) -> None:
        """Nothing: the evaluation's numbers arrive with the metrics line of its step."""

    def on_finding(self, finding: Any) -> None:
        self.tracker.log_finding(finding)

    def on_end(self, result: Any) -> None:
        self.tracker.log_scalars({"run/findings": float(len(result.findings))}, result.steps)
        self.tracker.close("finished")
