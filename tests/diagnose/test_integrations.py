"""Lightning and Hugging Face adapters, on tiny real training runs (if installed)."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")


def regression_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    w = torch.randn(6, 3, generator=g)
    return x, x @ w + 0.01 * torch.randn(n, 3, generator=g)


@pytest.mark.parametrize(
    ("name", "modules", "install"),
    [
        (
            "DiagnoseLightningCallback",
            ("lightning", "lightning.pytorch", "pytorch_lightning"),
            "pip install lightning",
        ),
        ("DiagnoseHFCallback", ("transformers",), "pip install transformers"),
    ],
)
def test_missing_framework_is_a_clear_usage_error(monkeypatch, name, modules, install):
    from vla_eval.diagnose import integrations
    from vla_eval.errors import UsageError

    # hide the framework whether or not it is installed: None in sys.modules makes
    # its import fail, as it does where the framework is missing
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(integrations, "_BUILT", {})
    with pytest.raises(UsageError, match=install):
        getattr(integrations, name)


def lightning_run(lr, seed=0, steps=40, clip=1.0):
    pl = pytest.importorskip("lightning.pytorch")
    from vla_eval.diagnose.integrations import DiagnoseLightningCallback

    class Policy(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)
            )

        def training_step(self, batch, batch_idx):
            x, y = batch
            pred = self.net(x)
            loss = (pred - y).pow(2).mean()
            return {"loss": loss, "pred_actions": pred, "target_actions": y}

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", (self.net(x) - y).pow(2).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=lr)

    torch.manual_seed(seed)
    x, y = regression_data(seed=seed)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*regression_data(64, 9)))
    seen = []
    callback = DiagnoseLightningCallback(on_finding=seen.append)
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        gradient_clip_val=clip,
        val_check_interval=8,
        num_sanity_val_steps=0,
    )
    trainer.fit(Policy(), train, val)
    return callback, seen


@pytest.mark.slow
def test_lightning_flags_lr_x1000_and_stays_quiet_when_healthy():
    callback, seen = lightning_run(lr=0.05)
    assert callback.diagnose.findings == [] and seen == []
    # clipped at 1.0: the spike is still seen, since gradients are read before clipping
    callback, seen = lightning_run(lr=50.0)
    assert [(f.symptom, f.step) for f in seen] == [("gradient_explosion", 1)]
    assert seen[0].evidence["grad_norm"] > 100
    # unclipped, the run goes NaN, and the first bad parameter is named
    callback, seen = lightning_run(lr=50.0, clip=None)
    assert {f.symptom for f in seen} == {"gradient_explosion"}
    critical = [f for f in seen if f.severity == "critical"]
    assert critical and critical[0].evidence["nonfinite_param"] == "net.0.weight"


def hf_run(lr, steps=30, max_grad_norm=1.0):
    transformers = pytest.importorskip("transformers")
    from vla_eval.diagnose.integrations import DiagnoseHFCallback

    class Policy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3)
            )

        def forward(self, obs, actions):
            pred = self.net(obs)
            return {"loss": (pred - actions).pow(2).mean(), "pred": pred}

    class Data(torch.utils.data.Dataset):
        def __init__(self, n, seed):
            self.x, self.y = regression_data(n, seed)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return {"obs": self.x[i], "actions": self.y[i]}

    torch.manual_seed(0)
    seen = []
    callback = DiagnoseHFCallback(on_finding=seen.append)
    args = transformers.TrainingArguments(
        output_dir=None,
        max_steps=steps,
        per_device_train_batch_size=32,
        learning_rate=lr,
        max_grad_norm=max_grad_norm,
        optim="sgd",
        lr_scheduler_type="constant",
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=10,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=Policy(),
        args=args,
        train_dataset=Data(256, 0),
        eval_dataset=Data(64, 9),
        callbacks=[callback],
    )
    trainer.train()
    return callback, seen


def test_hugging_face_flags_lr_x1000_and_stays_quiet_when_healthy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the Trainer writes its default output folder here
    callback, seen = hf_run(lr=0.05)
    assert callback.diagnose.findings == []
    # the Trainer clips at 1.0 by default; its logged norm is the one before clipping
    callback, seen = hf_run(lr=5e4)
    assert [f.symptom for f in seen] == ["gradient_explosion"]
    assert seen[0].step == 2 and seen[0].evidence["grad_norm"] > 1e6
    # unclipped, the run goes NaN, and the first bad parameter is named
    callback, seen = hf_run(lr=5e4, max_grad_norm=0.0)
    critical = [f for f in seen if f.severity == "critical"]
    assert critical and critical[0].evidence["nonfinite_param"] == "net.0.weight"


@pytest.mark.slow
def test_lightning_callback_state_travels_with_the_checkpoint():
    from vla_eval.diagnose.integrations import DiagnoseLightningCallback

    callback, seen = lightning_run(lr=50.0, steps=12)
    assert seen  # the spike: a history worth restoring
    saved = callback.state_dict()
    fresh = DiagnoseLightningCallback(on_finding=None)
    fresh.load_state_dict(saved)  # Lightning restores callbacks before or after setup
    fresh.setup(None, torch.nn.Linear(6, 3), "fit")
    assert fresh.diagnose.findings == callback.diagnose.findings
    assert fresh.diagnose.state_dict() == saved["diagnose"]
