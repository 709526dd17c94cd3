"""One detector per symptom of the failure table, and the base they share.

`base` holds the `Signals` record, the once-per-episode `Latch`, the `Detector` base
and the `DetectorSet`; each symptom has its own module (`gradient_explosion`,
`mode_collapse`, `action_jitter`, `overfitting`, `forgetting`, `task_imbalance`);
`defaults` builds one of each with threshold overrides (`default_detectors`).
Detectors work on plain floats and numpy arrays and must not import torch.
"""

from vla_eval.diagnose.detectors.action_jitter import ActionJitter, action_scale, roughness
from vla_eval.diagnose.detectors.base import (
    Detector,
    DetectorSet,
    Latch,
    LoopContext,
    Signals,
    TaskErrorStats,
)
from vla_eval.diagnose.detectors.defaults import (
    CROSS_ENTROPY_THRESHOLDS,
    DETECTORS,
    default_detectors,
)
from vla_eval.diagnose.detectors.forgetting import CatastrophicForgetting
from vla_eval.diagnose.detectors.gradient_explosion import GradientExplosion
from vla_eval.diagnose.detectors.mode_collapse import ModeCollapse, dispersion_ratio, top_bin_share
from vla_eval.diagnose.detectors.overfitting import Overfitting
from vla_eval.diagnose.detectors.task_imbalance import TaskImbalance, temperature_probabilities

__all__ = [
    "CROSS_ENTROPY_THRESHOLDS",
    "DETECTORS",
    "ActionJitter",
    "CatastrophicForgetting",
    "Detector",
    "DetectorSet",
    "GradientExplosion",
    "Latch",
    "LoopContext",
    "ModeCollapse",
    "Overfitting",
    "Signals",
    "TaskErrorStats",
    "TaskImbalance",
    "action_scale",
    "default_detectors",
    "dispersion_ratio",
    "roughness",
    "temperature_probabilities",
    "top_bin_share",
]
