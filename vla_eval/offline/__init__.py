"""Offline evaluation: "is this checkpoint learning?", on held-out demonstrations.

`metrics` holds `OfflineMetrics`, the numpy-only sufficient statistics every offline
number comes from (a training loop imports only that module); `heldout` the held-out
data; `evaluate` checkpoints on it (learning curves); `predictions` another model's
predictions files; `traces` open-loop traces; `output` the result's tables and files.
Importing this package loads numpy only, never torch.
"""

from vla_eval.offline.metrics import OfflineMetrics, as_numpy

__all__ = ["OfflineMetrics", "as_numpy"]
