"""`vla-eval train --tracker`: loss per step and findings in TensorBoard; a tracker that is
missing or unreachable stops the run before it trains; one that fails mid-run does not."""

from __future__ import annotations

import json
import math
import socket
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vla_eval.cli import main
from vla_eval.protocol import load_protocol
from vla_eval.trainer.config import TrackerConfig
from vla_eval.trainer.run_dir import config_dict
from vla_eval.trainer.train import train

SMOKE = Path(__file__).parents[2] / "protocols" / "smoke.toml"


def protocol(tmp_path: Path, tracker: str = "") -> Path:
    """The smoke protocol, 12 steps, with a learning rate that blows up within a few steps."""
    path = tmp_path / "boom.toml"
    path.write_text(
        f'base = "{SMOKE.as_posix()}"\nname = "boom"\n'
        "[train]\nsteps = 12\neval_every = 6\ncheckpoint_every = 0\n"
        "[train.recipe]\nlrs = [1000.0, 1000.0, 1000.0]\n" + tracker
    )
    return path


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_train_logs_loss_per_step_and_the_finding_at_its_step(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["train", str(protocol(tmp_path)), "--out", str(out), "--tracker", "tensorboard",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    rows = metrics(out)
    logged = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [s for s, _ in logged] == [r["step"] for r in rows] == list(range(12))
    for (_, got), row in zip(logged, rows, strict=True):
        want = np.float32(float(row["loss"]))  # "nan" in the metrics file is NaN here
        assert got == want or (math.isnan(got) and math.isnan(want))
    [finding] = json.loads((out / "findings.json").read_text())["findings"]
    tag = f"diagnose/{finding['symptom']}"
    level = {"warning": 1, "critical": 2}[finding["severity"]]
    assert [(e.step, e.value) for e in acc.Scalars(tag)] == [(finding["step"], level)]
    [text] = acc.Tensors(f"{tag}/text")
    assert text.step == finding["step"]
    assert finding["message"] in text.tensor_proto.string_val[0].decode()
    assert [e.step for e in acc.Scalars("eval/heldout_loss")] == [5, 11]
    assert "tensorboard --logdir" in capsys.readouterr().out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["unreachable", "missing"])
def test_a_tracker_that_cannot_start_stops_the_run_before_training(
    tmp_path, capsys, monkeypatch, how
) -> None:
    out = tmp_path / "run"
    if how == "unreachable":
        options = ["--tracker", "mlflow", "--tracker-uri", f"http://127.0.0.1:{_closed_port()}"]
    else:  # the protocol names it; the library is not installed
        monkeypatch.setitem(sys.modules, "tensorboard", None)
        options = []
    tracker = '[train.tracker]\nname = "tensorboard"\n' if how == "missing" else ""
    code = main(["train", str(protocol(tmp_path, tracker)), "--out", str(out), *options])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ("cannot be reached" if how == "unreachable" else "vla-eval[trackers]") in err
    assert not (out / "metrics.jsonl").exists()  # nothing trained
    assert not list((out / "checkpoints").glob("*.pt"))


def test_a_tracker_failing_mid_run_warns_once_and_the_run_finishes(
    tmp_path, capsys, monkeypatch
) -> None:
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    calls = {"n": 0}
    real = EventFileWriter.add_event

    def failing(self, event):  # the disk under the log folder fills up after a few events
        calls["n"] += 1
        if calls["n"] > 6:
            raise OSError(28, "No space left on device")
        return real(self, event)

    monkeypatch.setattr(EventFileWriter, "add_event", failing)
    config = replace(load_protocol(SMOKE).train, steps=8, eval_every=0, checkpoint_every=0)
    config = replace(config, tracker=TrackerConfig(name="tensorboard"))
    result = train(config, out_dir=tmp_path, progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "tracker" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert result.steps == 8 and [r["step"] for r in metrics(tmp_path)] == list(range(8))
    assert (tmp_path / "run.json").exists() and result.checkpoint.exists()
    assert calls["n"] == 7  # the tracker went quiet after its first failure


def test_the_tracker_is_not_part_of_the_run_configuration(tmp_path) -> None:
    """Checkpoints and run.json leave it out, so a run resumes under another tracker."""
    base = load_protocol(SMOKE).train
    other = replace(base, tracker=TrackerConfig(name="mlflow", uri="sqlite:///x.db"))
    assert config_dict(other) == config_dict(base) and "tracker" not in config_dict(base)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'base = "{SMOKE.as_posix()}"\n[train.tracker]\nname = "neptune"\n')
    from vla_eval.errors import UsageError

    with pytest.raises(UsageError, match=r"train\.tracker\.name"):
        load_protocol(bad)


def test_a_resumed_run_shows_each_step_once(tmp_path) -> None:
    """Steps logged after the last checkpoint and before the interruption are replaced."""
    config = replace(load_protocol(SMOKE).train, steps=8, eval_every=0, checkpoint_every=4)
    config = replace(config, tracker=TrackerConfig(name="tensorboard"))
    train(config, out_dir=tmp_path, progress=False)
    (tmp_path / "checkpoints" / "step_000008.pt").unlink()  # as if killed after step 8's line
    (tmp_path / "run.json").unlink()
    train(config, out_dir=tmp_path, resume=True, progress=False)
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    logged = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    want = [(r["step"], np.float32(r["loss"])) for r in metrics(tmp_path)]
    assert logged == want and [s for s, _ in want] == list(range(8))
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_command_line_options_lay_over_the_protocols_tracker() -> None:
    from vla_eval.cli import build_parser
    from vla_eval.cli.train import with_tracker
    from vla_eval.errors import UsageError

    base = load_protocol(SMOKE).train
    named = replace(base, tracker=TrackerConfig("mlflow", "http://h:5000", "ablations"))

    def laid(config, *options: str) -> TrackerConfig:
        args = build_parser().parse_args(["train", str(SMOKE), *options])
        return with_tracker(config, args).tracker

    assert laid(named) == named.tracker
    # another tracker: the protocol's URI was for MLflow, so it goes; the project stays
    assert laid(named, "--tracker", "wandb") == TrackerConfig("wandb", None, "ablations")
    assert laid(named, "--tracker-uri", "sqlite:///m.db") == TrackerConfig(
        "mlflow", "sqlite:///m.db", "ablations"
    )
    assert laid(base, "--tracker", "tensorboard") == TrackerConfig("tensorboard")
    with pytest.raises(UsageError, match="need --tracker"):
        laid(base, "--tracker-project", "p")
