"""Success-rate figures: readable at 4, 20 and 50 tasks, rows in a stable order, the
macro mean drawn, and intervals on every bar."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: The largest figure a report may draw at its dpi (150): it must fit a page or a screen.
MAX_WIDTH, MAX_HEIGHT = 2000, 2500


def _episodes(tmp_path: Path, n_tasks: int, trials: int = 10) -> Path:
    """Episodes of `n_tasks` tasks on two splits, written in a shuffled order."""
    rng = np.random.default_rng(n_tasks)
    rows = [
        {"task": f"task-{i}", "split": split, "seed": seed, "success": bool(rng.random() < 0.6)}
        for i in range(n_tasks)
        for split in ("unseen", "seen")
        for seed in range(trials)
    ]
    order = rng.permutation(len(rows))
    path = tmp_path / f"episodes{n_tasks}.jsonl"
    path.write_text("".join(json.dumps(rows[i]) + "\n" for i in order))
    return path


@pytest.mark.parametrize("n_tasks", [4, 20, 50])
def test_report_figure_stays_within_page_size(tmp_path, n_tasks):
    from vla_eval.episodes import load_episodes
    from vla_eval.report import build_report, plot_report

    report = build_report(load_episodes([_episodes(tmp_path, n_tasks)]))
    width, height = Image.open(plot_report(report, tmp_path / "f.png")).size
    assert width <= MAX_WIDTH and height <= MAX_HEIGHT, (width, height)
    # legible: at least 18 px per entry of the tallest facet (at most 20 rows of 2 splits)
    assert height >= 18 * 2 * min(n_tasks + 2, 20)


def test_many_rows_wrap_into_facets_with_summaries_together():
    from vla_eval.plots.rates import facet_rows

    rows = [f"t{i}" for i in range(50)] + ["pooled", "macro"]
    facets = facet_rows(rows, summary_rows=2)
    assert [len(f) for f in facets] == [18, 18, 16]
    assert [r for f in facets for r in f] == rows  # nothing lost or reordered
    assert facets[-1][-2:] == ["pooled", "macro"]
    assert facet_rows([f"t{i}" for i in range(6)], summary_rows=2) == [[f"t{i}" for i in range(6)]]
    # beyond three facets of twenty, facets grow taller rather than wider
    assert len(facet_rows([str(i) for i in range(100)])) == 3


def test_report_rows_sorted_by_task_then_split_and_macro_drawn(tmp_path, monkeypatch):
    """Rows follow task names (task-2 before task-10), seen before unseen, whatever order
    the episodes finished in; the pooled rate and the mean of task rates come last."""
    import vla_eval.plots
    from vla_eval.episodes import load_episodes
    from vla_eval.report import build_report, plot_report

    drawn = {}
    monkeypatch.setattr(
        vla_eval.plots, "forest_plot", lambda path, *columns, **kw: drawn.update(c=columns, kw=kw)
    )
    report = build_report(load_episodes([_episodes(tmp_path, 12)]))
    plot_report(report, tmp_path / "f.png")
    labels, groups, est, lower, upper = drawn["c"]
    names = [f"task-{i}" for i in range(12)]  # natural order: task-2 < task-10
    assert labels[:24] == [n for n in names for _ in range(2)]
    assert groups[:24] == ["seen", "unseen"] * 12
    assert labels[24:] == ["all tasks (pooled)"] * 2 + ["mean of task rates"] * 2
    assert drawn["kw"]["summary_rows"] == 2
    by_split = {s["split"]: s for s in report["splits"]}
    assert est[26:] == [by_split["seen"]["macro"]["rate"], by_split["unseen"]["macro"]["rate"]]
    assert lower[26] == by_split["seen"]["macro"]["lower"]
    assert upper[27] == by_split["unseen"]["macro"]["upper"]
    # the hand count: task-0/seen successes over its 10 trials
    rows = [json.loads(line) for line in (tmp_path / "episodes12.jsonl").read_text().splitlines()]
    k = sum(r["success"] for r in rows if r["task"] == "task-0" and r["split"] == "seen")
    assert est[0] == k / 10
    assert "tasks by name, then split" in drawn["kw"]["caption"]


def test_variant_bars_draw_wilson_error_bars(tmp_path, monkeypatch):
    """Bars carry the intervals given; the experiment's bars use 95% Wilson intervals
    computed from the counts (checked against statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    from vla_eval.offline.output import wilson_bounds

    lo, hi = wilson_bounds([0.25, None, 0.5], [64, 10, None])
    want = proportion_confint(16, 64, alpha=0.05, method="wilson")
    assert (lo[0], hi[0]) == pytest.approx(want, abs=1e-12)
    assert lo[1:] == [None, None] and hi[1:] == [None, None]

    import matplotlib.axes

    from vla_eval.plots import variant_bars_plot

    bars = []
    real = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "errorbar",
        lambda self, x, y, yerr=None, **kw: (
            bars.append((list(y), yerr)) or real(self, x, y, yerr=yerr, **kw)
        ),
    )
    path = variant_bars_plot(
        tmp_path / "b.png",
        ["base", "tuned"],
        {"web VQA accuracy": [0.25, 0.5]},
        intervals={"web VQA accuracy": [(lo[0], hi[0]), (0.4, 0.6)]},
    )
    assert Image.open(path).size[0] <= MAX_WIDTH
    ((_, (below, above)),) = bars
    assert below[0] == pytest.approx(0.25 - want[0]) and above[1] == pytest.approx(0.1)
