"""The offline result's figures: the plot functions write PNGs; open-loop traces pick dims."""

from __future__ import annotations

from vla_eval.offline.output import TRACE_DIMS, trace_dims

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_trace_dims_prefer_the_world_dims_else_the_first_four() -> None:
    names = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
    assert trace_dims(names) == list(TRACE_DIMS)
    assert trace_dims(["d0", "d1", "d2", "d3", "d4"]) == ["d0", "d1", "d2", "d3"]
    assert trace_dims(["a", "b"]) == ["a", "b"]


def test_plot_functions_write_pngs(tmp_path) -> None:
    from vla_eval import plots

    a = plots.dimension_accuracy_plot(
        tmp_path / "a.png", ["dx", "dy"], {"seen": {"exact": [0.5, None], "within ±1": [0.7, 0.9]}}
    )
    b = plots.learning_curve_plot(
        tmp_path / "b.png", [1, 5, 9], {"loss": {"seen": [3.0, 2.0, None]}}, marks=[(5, "x")]
    )
    trace = {
        "dims": ["dx", "dy"],
        "step": [0, 1],
        "true": [[0, 1], [1, 0]],
        "pred": [[0, 0], [1, 1]],
        "task": "pick",
        "split": "seen",
        "instruction": "go",
    }
    c = plots.action_traces_plot(tmp_path / "c.png", [trace], ["dx", "dy"])
    for p in (a, b, c):
        assert p.read_bytes()[:8] == PNG_MAGIC
