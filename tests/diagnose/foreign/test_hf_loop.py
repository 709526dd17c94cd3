"""Diagnose in a Hugging Face Trainer run through `DiagnoseHFCallback`.

The shared tiny VLA behind a ``forward(obs, task, actions) -> {"loss", "pred"}``; the
Trainer clips at 1.0 and logs every step; ``compute_metrics`` reports the per-task
held-out loss (``eval_loss/TASK``) and the web loss. The Trainer shows callbacks no
predictions, so `Observing` overrides ``compute_loss`` to hand each training batch's
predicted and target actions and task names to ``callback.observe``, as a user would,
which brings mode collapse and jitter within reach; `Tempered` samples tasks at a
temperature through ``get_train_dataloader``. Each symptom is flagged with fixes that
fit the run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vla_eval.diagnose.integrations import DiagnoseHFCallback  # noqa: E402

TASKS = ("pick", "place", "stack", "pour")  # as the world fixture (conftest.py) has them
RARE = {"pick": 300, "place": 250, "stack": 200, "pour": 24}

pytestmark = pytest.mark.slow


class Policy(torch.nn.Module):
    def __init__(self, vla, nan_at=None, blind=False):
        super().__init__()
        self.vla, self.nan_at, self.blind, self.calls = vla, nan_at, blind, 0

    def forward(self, obs, task, actions):
        if self.blind:  # an observation encoder that lost its input
            obs = obs * 0.0
        if self.training:
            if self.calls == self.nan_at:
                obs = obs.clone()
                obs[0, 0] = math.inf
            self.calls += 1
        pred = self.vla.actions(obs, task)
        return {"loss": (pred - actions).pow(2).mean(), "pred": pred, "task": task.float()}


class Rows(torch.utils.data.Dataset):
    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data["obs"])

    def __getitem__(self, i):
        return {
            "obs": self.data["obs"][i],
            "task": self.data["task"][i],
            "actions": self.data["actions"][i],
        }


class Observing(transformers.Trainer):
    """Hands each training batch's actions to the Diagnose callback."""

    def __init__(self, *args, diagnose, **kwargs):
        super().__init__(*args, **kwargs)
        self.diagnose = diagnose

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        loss, out = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        if model.training:
            self.diagnose.observe(
                pred_actions=out["pred"],
                target_actions=inputs["actions"],
                task=[TASKS[i] for i in inputs["task"].tolist()],
            )
        return (loss, out) if return_outputs else loss


class Tempered(transformers.Trainer):
    """Samples task t with probability proportional to count_t ** (1 / T)."""

    def __init__(self, *args, temperature, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = temperature

    def get_train_dataloader(self):
        task = self.train_dataset.data["task"]
        weights = torch.bincount(task).double()[task] ** (1.0 / self.temperature - 1.0)
        g = torch.Generator().manual_seed(self.args.seed)
        return torch.utils.data.DataLoader(
            self.train_dataset,
            batch_size=self.args.per_device_train_batch_size,
            sampler=torch.utils.data.WeightedRandomSampler(weights, len(weights), generator=g),
            collate_fn=self.data_collator,
        )


def fit(world, tmp, lr=3e-3, steps=400, robot=None, heldout=None, nan_at=None, **kw):
    robot, heldout = robot or world.robot, heldout or world.heldout
    seed = kw.get("seed", 0)
    torch.manual_seed(seed)
    model = Policy(world.model(kw.get("width", 64)), nan_at, kw.get("blind", False))
    # robot data only: the pre-trained backbone stays frozen (pi0-style), unless not
    model.vla.backbone.requires_grad_(not kw.get("frozen", True))

    def metrics(evaluation):
        (pred, task), target = evaluation.predictions, evaluation.label_ids
        err = ((pred - target) ** 2).mean(axis=(1, 2))
        out = {f"loss/{t}": float(err[task == i].mean()) for i, t in enumerate(TASKS)}
        with torch.no_grad():
            out["web_loss"] = float(model.vla.compute_vlm_loss(world.web_heldout))
        return out

    args = transformers.TrainingArguments(
        output_dir=str(tmp),
        max_steps=steps,
        per_device_train_batch_size=32,
        per_device_eval_batch_size=256,
        learning_rate=lr,
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=25,
        save_strategy="no",
        report_to=[],
        label_names=["actions"],
        use_cpu=True,
        seed=seed,
        disable_tqdm=True,
    )
    counts = {t: int((robot["task"] == i).sum()) for i, t in enumerate(TASKS)}
    temperature = kw.get("T")
    callback = DiagnoseHFCallback(on_finding=None, task_counts=counts, temperature=temperature)
    if temperature is not None:
        trainer_class, extra = Tempered, {"temperature": temperature}
    elif kw.get("observe"):
        trainer_class, extra = Observing, {"diagnose": callback}
    else:
        trainer_class, extra = transformers.Trainer, {}
    trainer = trainer_class(
        **extra,
        model=model,
        args=args,
        train_dataset=Rows(robot),
        eval_dataset=Rows(heldout),
        compute_metrics=metrics,
        callbacks=[callback],
    )
    trainer.train()
    return callback.diagnose


@pytest.fixture(scope="module")
def runs(world, tmp_path_factory):
    cache = {}

    def run(name, **kw):
        if name not in cache:
            cache[name] = fit(world, tmp_path_factory.mktemp(name), **kw)
        return cache[name]

    return run


@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_seeds_raise_nothing(runs, seed):
    diag = runs(f"healthy-{seed}", seed=seed, observe=True)  # the action checks run too
    assert diag.findings == [], [str(f) for f in diag.findings]
    assert (diag.context.clip, diag.context.lr) == (1.0, 3e-3)  # from TrainingArguments


def test_blind_observations_collapse(runs):
    diag = runs("blind", blind=True, observe=True)
    assert "mode_collapse" in [f.symptom for f in diag.findings]


def test_jittery_demonstrations_are_action_jitter(runs, world):
    jittery = world.data(RARE | {"pour": 150}, seed=5, jitter=0.5)
    diag = runs("jittery", robot=jittery, observe=True)
    [f] = [f for f in diag.findings if f.symptom == "action_jitter"]
    assert "demonstrations" in f.message


def test_a_corrupted_batch_is_a_critical_nan(runs):
    diag = runs("nan", nan_at=150, frozen=False)  # inf * 0 in the backbone's gradient
    [f] = [f for f in diag.findings if f.severity == "critical"]
    assert f.symptom == "gradient_explosion" and 150 <= f.step <= 151
    assert "already clips at 1" in f.fix and "base LR 0.003 -> 3.0e-4" in f.fix


def test_lr_x1000_spikes_early_and_clipping_absorbs_it(runs):
    diag = runs("lr-x1000", lr=3.0)
    first = diag.findings[0]
    assert first.symptom == "gradient_explosion" and first.step < 5
    assert "already absorbing it" in first.message and "base LR 3 -> 0.3" in first.fix


def test_fine_tuning_the_backbone_on_robot_data_only_forgets(runs):
    diag = runs("unfrozen", frozen=False)
    [f, *_] = [f for f in diag.findings if f.symptom == "catastrophic_forgetting"]
    assert "keep web data in the mix" in f.fix and "freeze the language backbone" in f.fix


def test_a_handful_of_noisy_demonstrations_overfits(runs, world):
    tiny = world.data(dict.fromkeys(TASKS, 8), seed=6, noise=0.5)
    diag = runs("tiny", robot=tiny, width=256, steps=500, frozen=False)
    assert "overfitting" in [f.symptom for f in diag.findings]


def test_a_rare_task_is_caught_on_held_out_data(runs, world):
    hard = ("pour",)
    robot = world.data(RARE, seed=7, hard=hard)
    heldout = world.data(dict.fromkeys(TASKS, 60), seed=8, hard=hard)
    diag = runs("rare", robot=robot, heldout=heldout)
    first = diag.findings[0]
    assert first.symptom == "task_imbalance" and first.evidence["task"] == "pour"
    assert first.evidence["signal"] == "held-out loss"
    assert first.evidence["suggested_temperature"] == 2.0  # the Trainer samples at T = 1
    assert np.isfinite(first.evidence["ratio"])


def test_a_rare_task_sampled_at_t2_is_caught_with_a_higher_temperature(runs, world):
    hard = ("pour",)
    robot = world.data(RARE, seed=7, hard=hard)
    heldout = world.data(dict.fromkeys(TASKS, 60), seed=8, hard=hard)
    diag = runs("rare-T2", robot=robot, heldout=heldout, T=2.0)
    assert diag.context.temperature == 2.0
    first = diag.findings[0]
    assert first.symptom == "task_imbalance" and first.evidence["task"] == "pour"
    assert first.evidence["signal"] == "held-out loss"
    assert first.evidence["suggested_temperature"] > 2.0
