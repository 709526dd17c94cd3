"""Several training seeds per variant: the runs x tasks statistics of an experiment.

When a protocol gives variants ``seeds``, each variant is trained once per seed and
every run is rolled out with the same evaluation seeds. This module reads each run's
success counts per (task, split) and adds, per variant, the mean and IQM success rate
with the two-level bootstrap (training runs, then episodes) and how much of the spread
between runs is seeds and how much episodes, and per comparison with the baseline the
probability of improvement with its interval. The statistics are `vla_eval.stats.runs`;
this module only arranges the numbers. It never imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_eval.errors import DataError
from vla_eval.stats.runs import improvement_interval, runs_interval, spread

#: The bootstrap generator's seed (every interval of the report uses it, so the report
#: is reproducible) and its number of replicates.
BOOTSTRAP_SEED = 0
N_BOOTSTRAP = 5000


def run_counts(success: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """``{"task/split": (successes, trials)}`` of one run's success report."""
    return {
        f"{g['task']}/{g.get('split')}": (int(g["successes"]), int(g["trials"]))
        for g in success["groups"]
    }


def counts_matrix(
    runs: list[dict[str, tuple[int, int]]], columns: list[str], where: str
) -> tuple[np.ndarray, np.ndarray]:
    """(runs, columns) successes and trials; DataError if a run lacks a column."""
    k = np.zeros((len(runs), len(columns)), dtype=np.int64)
    n = np.zeros_like(k)
    for r, counts in enumerate(runs):
        missing = [c for c in columns if c not in counts]
        if missing or len(counts) != len(columns):
            raise DataError(f"{where}: run {r + 1} has tasks {sorted(counts)}, not {columns}")
        for c, col in enumerate(columns):
            k[r, c], n[r, c] = counts[col]
    return k, n


def variant_runs(
    seeds: list[int], dirs: list[str], counts: list[dict[str, tuple[int, int]]], columns: list[str]
) -> dict[str, Any]:
    """A variant's ``runs`` block: its seeds, per-run counts, mean and IQM with the
    two-level bootstrap, and the spread split into seeds and episodes (None for one run)."""
    k, n = counts_matrix(counts, columns, f"runs in {dirs}")
    mean = runs_interval(k, n, "mean", rng=BOOTSTRAP_SEED, n_bootstrap=N_BOOTSTRAP)
    iqm = runs_interval(k, n, "iqm", rng=BOOTSTRAP_SEED, n_bootstrap=N_BOOTSTRAP)
    return {
        "seeds": seeds,
        "dirs": dirs,
        "columns": columns,
        "successes": k.tolist(),
        "trials": n.tolist(),
        "mean": mean.to_dict(),
        "iqm": iqm.to_dict(),
        "spread": spread(k, n) if k.shape[0] >= 2 else None,
    }


def improvement(variant: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """P(a run of `variant` beats a run of `baseline` on a task), both resampled by the
    two-level bootstrap (runs, then episodes)."""
    x = (np.array(variant["successes"]), np.array(variant["trials"]))
    y = (np.array(baseline["successes"]), np.array(baseline["trials"]))
    return improvement_interval(x, y, rng=BOOTSTRAP_SEED, n_bootstrap=N_BOOTSTRAP).to_dict()
