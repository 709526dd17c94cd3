"""The one small interface every experiment tracker sits behind, and its failure rule.

`Tracker` is what the trainer and the commands call: scalars at a step, text at a step,
the run's parameters, a Diagnose finding (a scalar ``diagnose/<symptom>`` holding the
severity level at the step it was seen, plus its text), a rollout video, a file, and
`close`. Each concrete tracker (TensorBoard, MLflow, W&B) implements the underscored
methods with its own library. The public methods apply the rule that a tracker never
stops the work it watches: the first exception a tracker raises is reported once on
stderr, the tracker goes quiet, and the run goes on writing its own local files. This
module depends only on the standard library and the findings' vocabulary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from vla_eval.diagnose.findings import SEVERITIES, Finding

#: What a finding's scalar holds: 1 for a warning, 2 for a critical finding.
SEVERITY_LEVEL: Mapping[str, int] = {s: i + 1 for i, s in enumerate(SEVERITIES)}

Status = Literal["finished", "failed"]
#: A rollout video: a file (.mp4, .gif, ...) or frames, uint8 (T, H, W, 3).
Video = str | os.PathLike[str] | Any


class Tracker:
    """A run in one experiment tracker; every method is safe to call after a failure.

    Attributes:
        name: the tracker (``tensorboard``, ``mlflow``, ``wandb``).
        location: where its data goes (a folder or a tracking URI), for messages.
        failed: None while the tracker works; after its first failure, why it failed.
    """

    name = "tracker"

    def __init__(self, location: str) -> None:
        self.location = location
        self.failed: str | None = None
        self._closed = False

    # --- what callers use -----------------------------------------------------------

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Scalars (a loss, a learning rate, a success rate) at `step`."""
        self._guard(self._scalars, {k: float(v) for k, v in values.items()}, step)

    def log_text(self, tag: str, text: str, step: int) -> None:
        """A piece of Markdown text at `step`."""
        self._guard(self._text, tag, text, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """The run's configuration (nested tables allowed), once at the start."""
        self._guard(self._params, dict(params))

    def log_finding(self, finding: Finding) -> None:
        """A Diagnose finding: ``diagnose/<symptom>`` = severity level, and its text,
        at the step it was seen (step 0 for a finding about rollouts)."""
        step = 0 if finding.step is None else finding.step
        self._guard(self._finding, finding, SEVERITY_LEVEL[finding.severity], step)

    def log_video(self, video: Video, tag: str = "rollout", step: int = 0, fps: int = 10) -> None:
        """A rollout video (a file or uint8 frames (T, H, W, 3)) where the tracker shows video."""
        self._guard(self._video, video, tag, step, fps)

    def log_file(self, path: str | os.PathLike[str], folder: str = "") -> None:
        """A file kept with the run (an artifact) where the tracker keeps files."""
        self._guard(self._file, Path(path), folder)

    def close(self, status: Status = "finished") -> None:
        """Flush and end the run (once). A tracker that already failed is left alone."""
        self._guard(self._close, status)
        self._closed = True

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close("failed" if exc_type is not None else "finished")

    # --- what each tracker implements -------------------------------------------------

    def _scalars(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def _text(self, tag: str, text: str, step: int) -> None:
        raise NotImplementedError

    def _params(self, params: dict[str, Any]) -> None:
        raise NotImplementedError

    def _finding(self, finding: Finding, level: int, step: int) -> None:
        tag = f"diagnose/{finding.symptom}"
        self._scalars({tag: float(level)}, step)
        self._text(f"{tag}/text", finding_text(finding), step)

    def _video(self, video: Video, tag: str, step: int, fps: int) -> None:
        raise NotImplementedError

    def _file(self, path: Path, folder: str) -> None:
        raise NotImplementedError

    def _close(self, status: Status) -> None:
        raise NotImplementedError

    # --- the failure rule -------------------------------------------------------------

    def _guard(self, write: Any, *args: Any) -> None:
        if self.failed is not None or self._closed:
            return
        try:
            write(*args)
        except Exception as exc:  # a tracker must never stop the run it watches
            self.failed = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
            print(
                f"vla-eval: warning: tracker {self.name} ({self.location}) failed: "
                f"{self.failed}; going on without it (the run's own files are unaffected)",
                file=sys.stderr,
            )


def finding_text(finding: Finding) -> str:
    """A finding as Markdown: severity, what was measured, the fix."""
    step = "rollouts" if finding.step is None else f"step {finding.step}"
    text = f"**{finding.severity}** {finding.symptom} at {step}: {finding.message}"
    return f"{text}\n\nFix: {finding.fix}" if finding.fix else text


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """Nested tables as one level, keys joined with `sep`.

    >>> flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}})
    {'a': 1, 'b/c': 2, 'b/d/e': 3}
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def numbers(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric leaves of `tree`, flattened; the strings ``"nan"``, ``"inf"``,
    ``"-inf"`` (how results write non-finite numbers) become floats again.

    >>> numbers({"loss": "nan", "lr": 0.1, "stage": "align", "per": {"pick": 2}})
    {'loss': nan, 'lr': 0.1, 'per/pick': 2.0}
    """
    out = {}
    for key, value in flatten(tree, prefix).items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif value in ("nan", "inf", "-inf"):
            out[key] = float(value)
    return out
