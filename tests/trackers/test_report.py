"""A success report in a tracker: every rate with its interval bounds, per task and split,
pooled per split, logged through the command-line helpers `report` and `online` use."""

from __future__ import annotations

import argparse
import json

import numpy as np
from statsmodels.stats.proportion import proportion_confint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vla_eval.cli.common import Parser
from vla_eval.cli.tracking import add_tracker_arguments, log_success_report, open_tracker
from vla_eval.episodes import load_episodes
from vla_eval.report import build_report

COUNTS = {("pick", "seen"): (7, 10), ("pick", "unseen"): (3, 10), ("pour", "seen"): (9, 12),
          ("pour", "unseen"): (0, 12)}  # fmt: skip


def write_episodes(path) -> None:
    lines = []
    for (task, split), (successes, trials) in COUNTS.items():
        for seed in range(trials):
            record = {"task": task, "split": split, "seed": seed, "success": seed < successes}
            lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = Parser(prog="test")
    add_tracker_arguments(parser)
    return parser.parse_args(argv)


def test_rates_and_wilson_bounds_per_task_split_and_pooled(tmp_path) -> None:
    write_episodes(tmp_path / "episodes.jsonl")
    report = build_report(load_episodes([tmp_path / "episodes.jsonl"]))
    args = parse(["--tracker", "tensorboard"])
    tracker = open_tracker(args, tmp_path / "out", {"command": "report"})
    log_success_report(tracker, report)  # logs, then closes

    acc = EventAccumulator(str(tmp_path / "out" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()

    def value(tag: str) -> float:
        [event] = acc.Scalars(tag)
        assert event.step == 0
        return event.value

    for (task, split), (k, n) in COUNTS.items():
        lower, upper = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert value(f"success/{task}/{split}/rate") == np.float32(k / n)
        assert value(f"success/{task}/{split}/lower") == np.float32(lower)
        assert value(f"success/{task}/{split}/upper") == np.float32(upper)
        assert value(f"success/{task}/{split}/trials") == n
    for split in ("seen", "unseen"):
        k = sum(c[0] for (_, s), c in COUNTS.items() if s == split)
        n = sum(c[1] for (_, s), c in COUNTS.items() if s == split)
        lower, upper = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert value(f"success/pooled/{split}/rate") == np.float32(k / n)
        assert value(f"success/pooled/{split}/lower") == np.float32(lower)
        assert value(f"success/pooled/{split}/upper") == np.float32(upper)
    assert "success/gap/seen-unseen/estimate" in acc.Tags()["scalars"]
    [table] = acc.Tensors("success/report")
    assert "| pour/unseen | 0 / 12 | 0.0% |" in table.tensor_proto.string_val[0].decode()


def test_without_tracker_nothing_is_opened(tmp_path) -> None:
    args = parse([])
    assert open_tracker(args, tmp_path, {"command": "report"}) is None
    log_success_report(None, {"groups": []})  # a no-op, so commands wire it unconditionally
    assert list(tmp_path.iterdir()) == []


def _scalars(logdir) -> dict[str, float]:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}


def test_report_command_logs_to_the_tracker(tmp_path, capsys) -> None:
    from vla_eval.cli import main

    write_episodes(tmp_path / "episodes.jsonl")
    out = tmp_path / "out"
    argv = [
        "report",
        str(tmp_path / "episodes.jsonl"),
        "--out",
        str(out),
        "--tracker",
        "tensorboard",
    ]
    assert main(argv) == 0
    logged = _scalars(out / "tensorboard")
    for (task, split), (k, n) in COUNTS.items():
        assert logged[f"success/{task}/{split}/rate"] == np.float32(k / n)


def test_online_command_logs_its_report_and_videos_to_the_tracker(tmp_path, capsys) -> None:
    from vla_eval.cli import main

    out = tmp_path / "run" / "pick.jsonl"
    argv = ["online", "expert", "--trials", "2", "--tasks", "pick", "--out", str(out)]
    assert (
        main([*argv, "--videos", "1", "--tracker", "tensorboard", "--json", "--no-progress"]) == 0
    )
    body = json.loads(capsys.readouterr().out)
    logged = _scalars(tmp_path / "run" / "tensorboard")
    for split in body["splits"]:
        pooled = split["pooled"]
        assert logged[f"success/pooled/{split['split']}/rate"] == np.float32(
            pooled["successes"] / pooled["trials"]
        )
    gifs = list((tmp_path / "run" / "tensorboard").rglob("*"))  # videos go in as GIF images
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert len(acc.Tags()["images"]) == len(body["videos"]["files"]) == 2, gifs
