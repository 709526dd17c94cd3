"""Training figures: a run's metrics.jsonl as panels."""

from __future__ import annotations

import json

import pytest

from vla_eval.jsonl import TruncatedLineWarning

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_curves_from_metrics_with_non_finite_values_and_a_cut_tail(tmp_path):
    from vla_eval.plots import training_curves_plot

    rows = []
    for step in range(40):
        row = {"step": step, "stage": "align" if step < 20 else "cotrain", "lr": 1e-3}
        row.update(robot_loss=2.0 / (1 + step), grad_norm="nan" if step == 7 else 1.0)
        row["loss_per_task"] = {"pick": 1.0, "place": 2.0}
        if step % 10 == 9:
            row.update(heldout={"seen": {"loss": 1.5}}, web_loss=1.2)
        rows.append(row)
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.parent.mkdir()
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 40, "lo')
    with pytest.warns(TruncatedLineWarning, match="metrics.jsonl:41"):
        path = training_curves_plot(metrics, tmp_path / "t.png", smooth=5)
    assert path.read_bytes()[:8] == PNG
