"""Figures: seaborn/matplotlib PNGs for reports, comparisons and training runs.

Every function here takes plain numbers (no vla-eval objects), writes one PNG and
returns its path: success-rate figures in `rates`, action figures in `actions`,
training figures in `training`. matplotlib runs on its non-interactive Agg backend,
so figures render on machines without a display. Only commands that draw import
this package; it imports seaborn and matplotlib at load time and must never import
torch.
"""

import matplotlib

matplotlib.use("Agg")

from vla_eval.plots.actions import action_traces_plot, dimension_accuracy_plot
from vla_eval.plots.rates import forest_plot, variant_bars_plot, variant_task_plot
from vla_eval.plots.training import learning_curve_plot, training_curves_plot

__all__ = [
    "action_traces_plot",
    "dimension_accuracy_plot",
    "forest_plot",
    "learning_curve_plot",
    "training_curves_plot",
    "variant_bars_plot",
    "variant_task_plot",
]
