"""`vla-eval diagnose` on other tools' logs: TensorBoard, Lightning CSV, MLflow.

Each log is written by the tool's own library in the test (a SummaryWriter, a real
Lightning fit with a CSVLogger, mlflow's client), with a loss spike induced at a known
step; the expected step and ratio come from the values written, not from the reader.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from vla_eval.cli import main
from vla_eval.diagnose import logs


def curve(steps=100, spike_at=60, factor=30.0):
    """A decaying loss with one spike, and the ratio to the median of the steps before."""
    loss = 1.0 / (1.0 + 0.01 * np.arange(steps))
    loss[spike_at] *= factor
    # the detector's window: the last 100 healthy steps before the spike
    ratio = loss[spike_at] / np.median(loss[max(0, spike_at - 100) : spike_at])
    return loss, ratio


def diagnose_json(capsys, *argv):
    """The JSON result of a diagnose that ran and found no reason to exit 1."""
    assert main(["diagnose", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tensorboard_directory_with_hugging_face_names(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    loss, ratio = curve()
    writer = SummaryWriter(str(tmp_path / "runs" / "exp1"))  # HF's TB writer's names
    for step in range(1, 101):  # the Trainer numbers its steps from 1
        writer.add_scalar("train/loss", loss[step - 1], step)
        writer.add_scalar("train/grad_norm", 0.5, step)
        writer.add_scalar("train/learning_rate", 1e-4, step)
        if step % 25 == 0:
            writer.add_scalar("eval/loss", 1.0, step)
    writer.close()
    result = diagnose_json(capsys, str(tmp_path / "runs"))  # the one run below
    assert result["format"] == "tensorboard" and result["records"] == 100
    assert result["signals"] == {
        "loss": "train/loss",
        "grad_norm": "train/grad_norm",
        "lr": "train/learning_rate",
        "heldout_loss": "eval/loss",
    }
    [f] = result["findings"]
    assert (f["symptom"], f["step"]) == ("gradient_explosion", 61)
    assert f["evidence"]["ratio"] == pytest.approx(ratio, rel=1e-5)  # float32 in the file


def test_tensorboard_tags_of_its_own_need_a_map(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    loss, _ = curve(spike_at=45)
    writer = SummaryWriter(str(tmp_path))
    for step, value in enumerate(loss):
        writer.add_scalar("objective", value, step)
        writer.add_scalar("throughput", 100.0, step)
    writer.close()
    assert main(["diagnose", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "its tags: objective, throughput" in err and err.count("\n") == 1
    assert main(["diagnose", str(tmp_path), "--map", "loss=objectiv"]) == 2
    assert "has no tag 'objectiv'" in capsys.readouterr().err
    result = diagnose_json(capsys, str(tmp_path), "--map", "loss=objective")
    assert [(f["symptom"], f["step"]) for f in result["findings"]] == [("gradient_explosion", 45)]


def test_lightning_metrics_csv_of_a_real_fit(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import CSVLogger

    class Regression(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            if self.trainer.global_step == 30:
                y = y * 100  # a corrupted batch: the loss spikes at step 30
            loss = (self.net(x) - y).pow(2).mean()
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", (self.net(x) - y).pow(2).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    x = torch.randn(400, 4, generator=torch.Generator().manual_seed(0))
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8
    )
    trainer = pl.Trainer(
        max_steps=45,
        logger=CSVLogger(str(tmp_path)),
        log_every_n_steps=1,
        val_check_interval=15,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Regression(), data, data)
    version = tmp_path / "lightning_logs" / "version_0"
    with open(version / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["train_loss"]]
    worst = max(rows, key=lambda r: float(r["train_loss"]))
    assert worst["step"] == "30"  # where Lightning logged the corrupted batch
    result = diagnose_json(capsys, str(version))
    assert result["format"] == "lightning-csv"
    assert result["signals"] == {"loss": "train_loss", "heldout_loss": "val_loss"}
    assert [(f["symptom"], f["step"]) for f in result["findings"]] == [("gradient_explosion", 30)]
    assert result["findings"][0]["evidence"]["loss"] == pytest.approx(float(worst["train_loss"]))


def test_lightning_csv_with_a_bad_cell_names_file_and_line(tmp_path, capsys):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,step,train_loss,val_loss\n0,0,1.0,\n0,1,oops,\n")
    assert main(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err
    assert "metrics.csv:3: 'train_loss' must be a number, got 'oops'" in err
    path.write_text("a,b\n1,2\n")
    assert main(["diagnose", str(path)]) == 2
    assert "with a 'step' column; header: a, b" in capsys.readouterr().err


def log_mlflow_run(uri, loss, monkeypatch):
    import mlflow
    from mlflow.entities import Metric

    # mlflow 3 writes a file store only when asked to; the reader opens one itself
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.tracking.MlflowClient(uri)
    run_id = client.create_run("0").info.run_id  # the default experiment
    metrics = [
        Metric(name, float(value), 0, step)
        for step, value in enumerate(loss, start=1)  # named as HF's MLflowCallback does
        for name, value in (("loss", value), ("grad_norm", 0.5), ("learning_rate", 1e-4))
    ]
    client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    return run_id


def test_mlflow_run_by_uri_and_by_store_path(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    loss, ratio = curve(steps=60, spike_at=39)
    run_id = log_mlflow_run(store.as_uri(), loss, monkeypatch)
    result = diagnose_json(capsys, "--mlflow-uri", store.as_uri(), "--run-id", run_id)
    assert result["format"] == "mlflow" and result["records"] == 60
    assert result["signals"] == {"loss": "loss", "grad_norm": "grad_norm", "lr": "learning_rate"}
    [f] = result["findings"]
    assert (f["symptom"], f["step"]) == ("gradient_explosion", 40)
    assert f["evidence"]["ratio"] == pytest.approx(ratio)
    # the store's path (its one run needs no id), and the run's own folder
    for path in (store, store / "0" / run_id):
        by_path = diagnose_json(capsys, str(path))
        assert by_path["findings"] == result["findings"]
    # two runs: the id is needed, and the message lists them
    other = log_mlflow_run(store.as_uri(), loss[:30], monkeypatch)
    assert main(["diagnose", str(store)]) == 2
    err = capsys.readouterr().err
    assert "several runs; pick one with --run-id" in err and other in err and run_id in err
    assert main(["diagnose", "--mlflow-uri", store.as_uri(), "--run-id", "nope"]) == 2
    err = capsys.readouterr().err
    assert "run nope" in err and err.count("\n") == 1 and "Traceback" not in err


def test_records_merge_per_step_and_per_task_series():
    series = logs.Series(
        "log",
        "tensorboard",
        {
            "train_loss_step": [(0, 1.0), (1, 0.9), (2, 0.8)],
            "val_loss/pick": [(1, 0.5), (2, 0.4)],
            "val_loss/pour": [(2, 1.5)],
            "val_loss": [(2, 0.7)],
            "lr-AdamW": [(0, 1e-3), (1, 1e-3), (2, 1e-3)],
        },
    )
    log = logs.to_records(series, {})
    assert log.signals == {
        "loss": "train_loss_step",
        "lr": "lr-*",
        "heldout_loss": "val_loss",
        "heldout_loss_per_task": "val_loss/*",
    }
    assert log.records == [
        {"step": 0, "loss": 1.0, "lr": 1e-3},
        {"step": 1, "loss": 0.9, "lr": 1e-3, "heldout_loss_per_task": {"pick": 0.5}},
        {
            "step": 2,
            "loss": 0.8,
            "lr": 1e-3,
            "heldout_loss": 0.7,
            "heldout_loss_per_task": {"pick": 0.4, "pour": 1.5},
        },
    ]
    mapped = logs.to_records(series, logs.parse_map(["loss_per_task=val_loss/*"]))
    assert "heldout_loss_per_task" not in mapped.signals  # the mapped tags are taken
    assert mapped.records[2]["loss_per_task"] == {"pick": 0.4, "pour": 1.5}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--map", "loss"], "expected signal=tag"),
        (["--map", "speed=x"], "unknown signal 'speed'"),
        (["--map", "loss_per_task=loss"], "needs one '*'"),
    ],
)
def test_bad_maps_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "metrics.csv").write_text("step,train_loss\n0,1.0\n")
    assert main(["diagnose", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_directory_of_no_known_format_exits_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["diagnose", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no metrics.jsonl" in err and "TensorBoard" in err and err.count("\n") == 1
    assert main(["diagnose"]) == 2
    assert "--mlflow-uri" in capsys.readouterr().err


def test_an_sqlite_file_is_taken_for_an_mlflow_store(tmp_path):
    import sqlite3

    from vla_eval.diagnose.logs.mlflow_run import tracking_uri

    path = tmp_path / "mlflow.db"
    sqlite3.connect(path).execute("create table t (x)").connection.close()
    assert logs.detect(path) == "mlflow"
    assert tracking_uri(path) == (f"sqlite:///{path.resolve()}", None)
    assert logs.detect(tmp_path / "notes.txt") is None
