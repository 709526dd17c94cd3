"""Diagnose in a Lightning loop through `DiagnoseLightningCallback`.

A LightningModule around the shared tiny VLA: ``training_step`` returns the loss with
the predictions and targets, validation logs the held-out loss (overall and per task,
``val_loss/TASK``) and the web loss and accuracy, Lightning clips at 1.0. Healthy
seeds raise nothing; each induced failure is flagged with a fix that fits the loop
(it already clips, so no fix suggests clipping).
"""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from vla_eval.diagnose.integrations import DiagnoseLightningCallback  # noqa: E402

TASKS = ("pick", "place", "stack", "pour")  # as the world fixture (conftest.py) has them
RARE = {"pick": 300, "place": 250, "stack": 200, "pour": 24}

pytestmark = pytest.mark.slow


class Policy(pl.LightningModule):
    def __init__(self, world, lr, web_ratio, blind=False, nan_at=None, width=64):
        super().__init__()
        self.vla, self.world = world.model(width), world
        self.lr, self.web_ratio, self.blind, self.nan_at = lr, web_ratio, blind, nan_at

    def training_step(self, batch, batch_idx):
        obs, task, actions = batch
        if self.blind:
            obs = obs * 0.0
        if self.global_step == self.nan_at:
            obs = obs.clone()
            obs[0, 0] = math.inf
        pred = self.vla.actions(obs, task)
        loss = (pred - actions).pow(2).mean()
        if self.web_ratio:
            idx = torch.randint(0, len(self.world.web["obs"]), (len(obs),))
            web = self.vla.compute_vlm_loss({k: v[idx] for k, v in self.world.web.items()})
            loss = (1 - self.web_ratio) * loss + self.web_ratio * web
        names = [TASKS[i] for i in task.tolist()]
        return {"loss": loss, "pred_actions": pred, "target_actions": actions, "task": names}

    def validation_step(self, batch, batch_idx):
        obs, task, actions = batch
        err = (self.vla.actions(obs, task) - actions).pow(2).mean((1, 2))
        self.log("val_loss", err.mean())
        for i, name in enumerate(TASKS):
            self.log(f"val_loss/{name}", err[task == i].mean())
        web = self.world.web_heldout
        self.log("web_loss", self.vla.compute_vlm_loss(web))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.01)


def fit(world, lr=3e-3, web_ratio=0.5, seed=0, steps=400, robot=None, heldout=None, T=1.0, **kw):
    robot, heldout = robot or world.robot, heldout or world.heldout
    pl.seed_everything(seed, verbose=False)
    counts = torch.bincount(robot["task"]).double()
    weights = counts[robot["task"]] ** (1.0 / T - 1.0)
    g = torch.Generator().manual_seed(seed)
    train = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(robot["obs"], robot["task"], robot["actions"]),
        batch_size=32,
        sampler=torch.utils.data.WeightedRandomSampler(weights, len(weights), generator=g),
    )
    val = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(heldout["obs"], heldout["task"], heldout["actions"]),
        batch_size=len(heldout["obs"]),
    )
    task_counts = {t: int(c) for t, c in zip(TASKS, counts.tolist(), strict=True)}
    callback = DiagnoseLightningCallback(on_finding=None, task_counts=task_counts, temperature=T)
    trainer = pl.Trainer(
        max_steps=steps,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        gradient_clip_val=1.0,
        val_check_interval=25,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
    )
    trainer.fit(Policy(world, lr, web_ratio, **kw), train, val)
    return callback.diagnose


@pytest.fixture(scope="module")
def runs(world):
    cache = {}

    def run(name, **kw):
        if name not in cache:
            cache[name] = fit(world, **kw)
        return cache[name]

    return run


def symptoms(diag):
    return [f.symptom for f in diag.findings]


@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_seeds_raise_nothing(runs, seed):
    diag = runs(f"healthy-{seed}", seed=seed)
    assert diag.findings == [], [str(f) for f in diag.findings]
    assert diag.context.clip == 1.0  # read from the Trainer


def test_a_corrupted_batch_is_a_critical_nan(runs):
    diag = runs("nan", nan_at=150)
    [f] = [f for f in diag.findings if f.severity == "critical"]
    assert f.symptom == "gradient_explosion" and 150 <= f.step <= 151
    assert "already clips at 1" in f.fix


def test_lr_x1000_spikes_early_and_clipping_absorbs_it(runs):
    diag = runs("lr-x1000", lr=3.0)
    first = diag.findings[0]
    assert first.symptom == "gradient_explosion" and first.step < 5
    assert "already absorbing it" in first.message and "clip the gradient" not in first.fix


def test_blind_observations_collapse(runs):
    assert "mode_collapse" in symptoms(runs("blind", blind=True))


def test_jittery_demonstrations_are_action_jitter(runs, world):
    diag = runs("jittery", robot=world.data(RARE | {"pour": 150}, seed=5, jitter=0.5))
    [f] = [f for f in diag.findings if f.symptom == "action_jitter"]
    assert "demonstrations" in f.message


def test_a_handful_of_noisy_demonstrations_overfits(runs, world):
    tiny = world.data(dict.fromkeys(TASKS, 8), seed=6, noise=0.5)
    diag = runs("tiny", robot=tiny, width=256, steps=1500)
    assert "overfitting" in symptoms(diag)


def test_training_without_web_data_forgets(runs):
    diag = runs("robot-only", web_ratio=0.0, lr=3e-2)
    [f, *_] = [f for f in diag.findings if f.symptom == "catastrophic_forgetting"]
    assert "keep web data in the mix" in f.fix  # the callback was not told the mix


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_a_rare_task_is_caught_on_held_out_data(runs, world, temperature):
    hard = ("pour",)
    robot = world.data(RARE, seed=7, hard=hard)
    heldout = world.data(dict.fromkeys(TASKS, 60), seed=8, hard=hard)
    diag = runs(f"T={temperature}", robot=robot, heldout=heldout, T=temperature)
    first = diag.findings[0]
    assert first.symptom == "task_imbalance" and first.evidence["task"] == "pour"
    assert first.evidence["signal"] == "held-out loss"
    assert first.evidence["suggested_temperature"] > temperature
