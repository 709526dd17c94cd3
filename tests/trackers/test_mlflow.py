"""MLflow: the embedded SQLite store read back with `MlflowClient`; a server nobody
listens on is refused at once."""

from __future__ import annotations

import socket
import sys
import time

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from vla_eval.diagnose.findings import Finding
from vla_eval.errors import UsageError
from vla_eval.trackers import open_tracker


@pytest.mark.slow  # a new SQLite store creates its tables: seconds
def test_metrics_params_findings_and_files_read_back_from_the_default_store(tmp_path) -> None:
    rng = np.random.default_rng(1)
    losses = rng.uniform(0.1, 5.0, size=30)
    config = {"steps": 30, "recipe": {"lrs": [1e-3, 2e-5]}}
    frames = rng.integers(0, 255, size=(4, 16, 16, 3), dtype=np.uint8)
    tracker = open_tracker(
        "mlflow", tmp_path, project="trackers-test", run_name="r1", config=config
    )
    for step, loss in enumerate(losses):
        tracker.log_scalars({"train/loss": loss}, step)
    tracker.log_finding(Finding("overfitting", 17, "warning", "held-out loss rises.", "more data."))
    tracker.log_video(frames, "rollout", step=29, fps=4)
    tracker.close()
    assert tracker.failed is None

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("trackers-test")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "r1" and run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == list(enumerate(losses))
    [event] = client.get_metric_history(run.info.run_id, "diagnose/overfitting")
    assert (event.step, event.value) == (17, 1.0)  # warning = 1
    assert run.data.tags["diagnose.overfitting"] == "warning at step 17"
    assert run.data.params == {"steps": "30", "recipe.lrs": "[0.001, 2e-05]"}
    texts = client.list_artifacts(run.info.run_id, "text/diagnose/overfitting/text")
    assert [a.path.rsplit("/", 1)[-1] for a in texts] == ["step_000017.md"]
    [video] = client.list_artifacts(run.info.run_id, "videos/rollout")
    assert video.path.endswith(".mp4") and video.file_size > 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def test_a_server_nobody_listens_on_is_refused_in_seconds(tmp_path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(UsageError, match="cannot be reached") as err:
        open_tracker("mlflow", tmp_path, uri=uri)
    assert time.monotonic() - started < 5
    assert uri in str(err.value) and "\n" not in str(err.value)


def test_missing_mlflow_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(UsageError, match=r"vla-eval\[trackers\]"):
        open_tracker("mlflow", tmp_path)
    assert not (tmp_path / "mlflow").exists()


@pytest.mark.slow  # a new SQLite store creates its tables: seconds
def test_a_resumed_run_continues_its_mlflow_run(tmp_path) -> None:
    first = open_tracker("mlflow", tmp_path, project="resume", run_name="r")
    for step in range(3):
        first.log_scalars({"train/loss": 1.0 / (step + 1)}, step)
    first.close("failed")  # killed: the next start resumes from its checkpoint at step 3
    again = open_tracker("mlflow", tmp_path, project="resume", run_name="r", resume_step=3)
    assert again.run_id == first.run_id
    for step in range(3, 5):
        again.log_scalars({"train/loss": 1.0 / (step + 1)}, step)
    again.close()
    fresh = open_tracker("mlflow", tmp_path, project="resume", run_name="r")  # not a resume
    fresh.close()

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path.resolve() / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("resume")
    runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {first.run_id, fresh.run_id} and fresh.run_id != first.run_id
    assert runs[first.run_id].info.status == "FINISHED"
    history = client.get_metric_history(first.run_id, "train/loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1, 2, 3, 4]
