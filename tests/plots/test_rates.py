"""Success-rate figures."""

from __future__ import annotations

import numpy as np


def test_forest_plot_draws_many_tasks(tmp_path):
    from vla_eval.plots import forest_plot

    rng = np.random.default_rng(0)
    labels = [f"task {i}" for i in range(12) for _ in range(3)]
    groups = ["seen", "unseen", "novel"] * 12
    est = rng.uniform(0.2, 0.8, 36)
    path = forest_plot(tmp_path / "f.png", labels, groups, est, est - 0.1, est + 0.1)
    assert path.stat().st_size > 10_000
