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


@pytest.mark.parametrize(
    "stages",
    [
        [("align", 10), ("cofinetune", 480), ("specialise", 10)],  # two 2% stages
        [("align", 250), ("cofinetune", 5), ("specialise", 5), ("polish", 240)],  # 1% each
    ],
)
def test_stage_names_never_overlap_however_short_the_stage(stages):
    """Every stage keeps its name, inside the figure, and no two names overlap."""
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from vla_eval.plots.training import stage_spans, stage_strip

    rows, step = [], 0
    for name, length in stages:
        rows += [{"step": s, "stage": name} for s in range(step, step + length)]
        step += length
    spans = stage_spans(rows, step)
    assert [(s, e) for s, e, _ in spans][1] == (
        float(stages[0][1]),
        float(stages[0][1] + stages[1][1]),
    )
    fig, ax = plt.subplots(figsize=(5.2, 0.6))
    ax.set_xlim(0, step)
    stage_strip(ax, spans)
    fig.canvas.draw()
    texts = ax.texts
    assert [t.get_text() for t in texts] == [f"{i + 1}. {n}" for i, (n, _) in enumerate(stages)]
    boxes = [Text.get_window_extent(t) for t in texts]  # the words alone, without ticks
    strip = ax.get_window_extent()
    for i, a in enumerate(boxes):
        assert strip.x0 - 1 <= a.x0 and a.x1 <= strip.x1 + 1  # inside the strip's width
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
        for t in texts:  # no tick runs through another stage's name
            if t is not texts[i] and t.arrow_patch is not None:
                assert not a.overlaps(t.arrow_patch.get_window_extent()), texts[i].get_text()
    plt.close(fig)


def test_training_plot_labels_its_axes(tmp_path):
    """Units on the axes: LR labelled, web VQA loss on its own axis."""
    import matplotlib.pyplot as plt

    from vla_eval.plots import training_curves_plot

    rows = [
        {"step": s, "stage": "a" if s < 5 else "b", "lr": 1e-3, "robot_loss": 2.0,
         "train_web_loss": 0.5, "grad_norm": 1.0,
         **({"heldout": {"seen": {"loss": 1.0}}, "web_loss": 0.4} if s % 5 == 4 else {})}
        for s in range(30)
    ]  # fmt: skip
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = []
    real_save = plt.Figure.savefig
    try:
        plt.Figure.savefig = lambda fig, *a, **k: (seen.append(fig), real_save(fig, *a, **k))[1]
        training_curves_plot(tmp_path / "run" / "metrics.jsonl", tmp_path / "t.png", smooth=3)
    finally:
        plt.Figure.savefig = real_save
    labels = {ax.get_ylabel() for ax in seen[0].axes}
    assert {
        "learning rate (log scale)",
        "web VQA loss (nats)",
        "action-token loss (nats)",
    } <= labels
    assert "grad norm (before clipping)" in labels
