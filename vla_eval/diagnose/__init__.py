"""Training diagnostics: detectors for the VLA failure table, live or offline.

`Diagnose` watches a training loop (any PyTorch loop, or Lightning / Hugging Face
through `vla_eval.diagnose.integrations`); `vla_eval.diagnose.offline` runs the same
detectors over a finished run's ``metrics.jsonl`` (or a TensorBoard, Lightning CSV or
MLflow log, via `vla_eval.diagnose.logs`) or a rollouts file. Importing this
package does not import torch; `Diagnose` imports it when it reads gradients.
"""

from vla_eval.diagnose.detectors import (
    CROSS_ENTROPY_THRESHOLDS,
    DETECTORS,
    ActionJitter,
    CatastrophicForgetting,
    Detector,
    GradientExplosion,
    LoopContext,
    ModeCollapse,
    Overfitting,
    Signals,
    TaskImbalance,
    default_detectors,
)
from vla_eval.diagnose.findings import FAILURE_TABLE, SYMPTOMS, Finding
from vla_eval.diagnose.gradients import GradientReading
from vla_eval.diagnose.monitor import Diagnose

__all__ = [
    "CROSS_ENTROPY_THRESHOLDS",
    "DETECTORS",
    "FAILURE_TABLE",
    "SYMPTOMS",
    "ActionJitter",
    "CatastrophicForgetting",
    "Detector",
    "Diagnose",
    "Finding",
    "GradientExplosion",
    "GradientReading",
    "LoopContext",
    "ModeCollapse",
    "Overfitting",
    "Signals",
    "TaskImbalance",
    "default_detectors",
]
