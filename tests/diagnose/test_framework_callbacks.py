"""The Lightning and Hugging Face callbacks follow their frameworks' conventions.

Real tiny runs (CPU): a NaN induced at a known step stops training there when asked
(``trainer.should_stop`` / ``control.should_training_stop``) and is logged to the
framework's logger and to Python logging; a loss spike x50 that only a long history
can judge fires after a resume at the same step as in the uninterrupted run (the
detectors' state travels with the checkpoint), and does not fire when the state is
removed from the checkpoint (so the history is what made it fire).
"""

from __future__ import annotations

import csv
import logging
import math

import pytest

torch = pytest.importorskip("torch")

SPIKE = 50.0  # x the running loss: over the 10x of a long history, under the 1000x of none


def regression_data(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    w = torch.randn(6, 3, generator=g)
    return x, x @ w + 0.01 * torch.randn(n, 3, generator=g)


def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))


# --- Lightning ------------------------------------------------------------------------


def lightning_fit(
    tmp_path, callback, max_steps, nan_at=None, spike_at=None, ckpt_path=None, **trainer_kw
):
    pl = pytest.importorskip("lightning.pytorch")

    class Policy(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp()

        def training_step(self, batch, batch_idx):
            x, y = batch
            if self.trainer.global_step == nan_at:
                x = x.clone()
                x[0, 0] = math.inf
            loss = (self.net(x) - y).pow(2).mean()
            return loss * SPIKE if self.trainer.global_step == spike_at else loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.02)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*regression_data()), 16)
    trainer = pl.Trainer(
        max_steps=max_steps,
        callbacks=[callback],
        default_root_dir=str(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **{"logger": False, **trainer_kw},
    )
    trainer.fit(Policy(), data, ckpt_path=ckpt_path)
    return trainer


def test_lightning_stops_on_a_critical_nan_and_logs_it(tmp_path, caplog):
    from lightning.pytorch.loggers import CSVLogger

    from vla_eval.diagnose.integrations import DiagnoseLightningCallback

    seen = []
    callback = DiagnoseLightningCallback(on_finding=seen.append, stop_on=("critical",))
    with caplog.at_level(logging.WARNING, logger="vla_eval.diagnose"):
        trainer = lightning_fit(tmp_path, callback, 30, nan_at=12, logger=CSVLogger(tmp_path))
    # the NaN batch is optimizer step 12; training stops right after it
    assert trainer.global_step == 13
    stop = callback.stopped_by
    assert (stop.symptom, stop.step, stop.severity) == ("gradient_explosion", 12, "critical")
    assert stop.evidence["nonfinite_param"] == "net.0.weight" and seen == [stop]
    assert [(r.levelname, r.getMessage()[:31]) for r in caplog.records] == [
        ("ERROR", "step 12 gradient_explosion: los")
    ]
    with open(tmp_path / "lightning_logs" / "version_0" / "metrics.csv", newline="") as fh:
        logged = [(r["step"], r["diagnose/gradient_explosion"]) for r in csv.DictReader(fh)]
    assert logged == [("12", "2.0")]
    # not asked to stop, the run goes on to max_steps
    callback = DiagnoseLightningCallback()
    trainer = lightning_fit(tmp_path, callback, 30, nan_at=12)
    assert trainer.global_step == 30 and callback.stopped_by is None
    assert [f.step for f in callback.diagnose.findings if f.severity == "critical"] == [12]


DDP_RUN = """
import math, sys
import torch
import lightning.pytorch as pl
from vla_eval.diagnose.integrations import DiagnoseLightningCallback

out = sys.argv[1]


class Policy(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(6, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.trainer.global_step == 8 and self.global_rank == 1:  # rank 1's batch only
            x = x.clone()
            x[0, 0] = math.inf
        return (self.net(x) - y).pow(2).mean()

    def on_train_end(self):
        with open(f"{out}/stopped{self.global_rank}", "w") as fh:
            fh.write(str(self.trainer.global_step))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.02)


def note(finding):
    with open(f"{out}/found{torch.distributed.get_rank()}", "a") as fh:
        fh.write(f"{finding.step} {finding.severity}\\n")


x = torch.randn(256, 6, generator=torch.Generator().manual_seed(0))
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :3]), batch_size=8)
trainer = pl.Trainer(
    max_steps=20, callbacks=[DiagnoseLightningCallback(on_finding=note, stop_on="critical")],
    logger=False, enable_checkpointing=False, enable_progress_bar=False,
    enable_model_summary=False, accelerator="cpu", devices=2, strategy="ddp_fork",
)
trainer.fit(Policy(), data)
"""


@pytest.mark.slow
def test_lightning_ddp_reports_on_rank_zero_and_stops_every_rank(tmp_path):
    """Two real DDP processes (gloo, CPU): the NaN of rank 1's batch reaches both
    through the all-reduced gradients; only rank 0 reports it; both stop after it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("lightning.pytorch")
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "found0").read_text() == "8 critical\n"
    assert not (tmp_path / "found1").exists()
    assert done.stderr.count("step 8 gradient_explosion") == 1  # logged once, by rank 0
    assert [(tmp_path / f"stopped{r}").read_text() for r in (0, 1)] == ["9", "9"]


def spike_steps(callback):
    return [(f.symptom, f.step) for f in callback.diagnose.findings]


def test_lightning_resume_keeps_the_detectors_history(tmp_path):
    from vla_eval.diagnose.integrations import DiagnoseLightningCallback

    whole = DiagnoseLightningCallback()
    lightning_fit(tmp_path / "whole", whole, 32, spike_at=26)
    assert spike_steps(whole) == [("gradient_explosion", 26)]

    first = lightning_fit(tmp_path / "a", DiagnoseLightningCallback(), 25, spike_at=26)
    ckpt = tmp_path / "step25.ckpt"
    first.save_checkpoint(ckpt)
    resumed = DiagnoseLightningCallback()
    lightning_fit(tmp_path / "b", resumed, 32, spike_at=26, ckpt_path=str(ckpt))
    assert spike_steps(resumed) == [("gradient_explosion", 26)]
    # judged against the same history: the 26 healthy steps before it, 25 of them
    # seen before the checkpoint (the resumed epoch draws other batches, so the
    # spike's own size differs)
    for callback in (whole, resumed):
        assert "over the last 26 healthy steps" in callback.diagnose.findings[0].message

    # the same resume without the callback's state: one healthy step of history is
    # too short to judge a x50 spike, so nothing fires
    saved = torch.load(ckpt, weights_only=False)
    assert any("Diagnose" in key for key in saved["callbacks"])
    saved["callbacks"] = {}
    torch.save(saved, ckpt)
    fresh = DiagnoseLightningCallback()
    lightning_fit(tmp_path / "c", fresh, 32, spike_at=26, ckpt_path=str(ckpt))
    assert spike_steps(fresh) == []


# --- Hugging Face ---------------------------------------------------------------------


class Rows(torch.utils.data.Dataset):
    def __init__(self):
        self.x, self.y = regression_data()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"obs": self.x[i], "actions": self.y[i]}


class Policy(torch.nn.Module):
    """Counts its training forward passes (one per optimizer step here)."""

    def __init__(self, nan_at=None, spike_at=None, calls=0):
        super().__init__()
        self.net, self.nan_at, self.spike_at, self.calls = mlp(), nan_at, spike_at, calls

    def forward(self, obs, actions):
        call = self.calls
        if self.training:
            self.calls += 1
            if call == self.nan_at:
                obs = obs.clone()
                obs[0, 0] = math.inf
        loss = (self.net(obs) - actions).pow(2).mean()
        return {"loss": loss * SPIKE if self.training and call == self.spike_at else loss}


def hf_train(tmp_path, callback, model, resume=None, **kw):
    transformers = pytest.importorskip("transformers")
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        **{
            "max_steps": 30,
            "per_device_train_batch_size": 16,
            "learning_rate": 0.02,
            "optim": "sgd",
            "lr_scheduler_type": "constant",
            "logging_steps": 5,  # the logs average 5 steps; the callback judges each
            "save_strategy": "no",
            "report_to": [],
            "use_cpu": True,
            "disable_tqdm": True,
            **kw,
        },
    )
    assert args.logging_nan_inf_filter  # the Trainer's default: NaN losses hidden in logs
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=Rows(), callbacks=[callback]
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_hugging_face_stops_on_the_real_nan_despite_the_log_filter(tmp_path, caplog):
    from vla_eval.diagnose.integrations import DiagnoseHFCallback

    callback = DiagnoseHFCallback(stop_on=("critical",))
    with caplog.at_level(logging.WARNING, logger="vla_eval.diagnose"):
        trainer = hf_train(tmp_path, callback, Policy(nan_at=12))
    # forward pass 12 (from 0) is the Trainer's step 13 (from 1); it stops there
    assert trainer.state.global_step == 13
    stop = callback.stopped_by
    assert (stop.symptom, stop.step, stop.severity) == ("gradient_explosion", 13, "critical")
    assert math.isnan(stop.evidence["loss"]) and math.isnan(stop.evidence["grad_norm"])
    assert stop.evidence["nonfinite_param"] == "net.0.weight"
    assert {"diagnose/gradient_explosion": 2.0, "step": 13} in trainer.state.log_history
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    # not asked to stop: the Trainer's own log of steps 11-15 hides the NaN
    callback = DiagnoseHFCallback()
    trainer = hf_train(tmp_path, callback, Policy(nan_at=12))
    assert trainer.state.global_step == 30 and callback.stopped_by is None
    [logged] = [e for e in trainer.state.log_history if e.get("step") == 15 and "loss" in e]
    assert math.isfinite(logged["loss"])
    assert [f.step for f in callback.diagnose.findings if f.severity == "critical"] == [13]


def test_hugging_face_resume_reads_the_state_saved_with_the_checkpoint(tmp_path):
    from vla_eval.diagnose.huggingface import STATE_FILE
    from vla_eval.diagnose.integrations import DiagnoseHFCallback

    whole = DiagnoseHFCallback()
    save = {"save_strategy": "steps", "save_steps": 24}
    hf_train(tmp_path / "whole", whole, Policy(spike_at=25), max_steps=32, **save)
    assert spike_steps(whole) == [("gradient_explosion", 26)]
    checkpoint = tmp_path / "whole" / "checkpoint-24"
    assert (checkpoint / STATE_FILE).is_file()

    resumed = DiagnoseHFCallback()
    model = Policy(spike_at=25, calls=24)
    hf_train(tmp_path / "whole", resumed, model, resume=str(checkpoint), max_steps=32, **save)
    assert spike_steps(resumed) == [("gradient_explosion", 26)]

    (checkpoint / STATE_FILE).unlink()  # a fresh history: too short to judge the spike
    fresh = DiagnoseHFCallback()
    model = Policy(spike_at=25, calls=24)
    hf_train(tmp_path / "whole", fresh, model, resume=str(checkpoint), max_steps=32, **save)
    assert spike_steps(fresh) == []


def test_stop_on_names_are_checked():
    from vla_eval.diagnose.integrations import check_stop_on
    from vla_eval.errors import UsageError

    assert check_stop_on("critical") == ("critical",)
    with pytest.raises(UsageError, match="stop_on: unknown \\['fatal'\\]"):
        check_stop_on(("fatal",))
