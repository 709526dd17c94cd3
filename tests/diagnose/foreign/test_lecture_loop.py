"""Diagnose inside the lecture's three-stage training loop (written anew, fixed to run).

The loop keeps the lecture's shape: per stage its own AdamW (weight decay 0.01) and
warmup-cosine schedule, temperature task sampling, clipping at 1.0, robot:web 50:50
in stage 2; a model whose ``compute_loss`` returns only a scalar. Fixed only enough
to run: the schedule starts from a small non-zero LR and survives a short stage, the
sampler is vectorised and handles T = inf. Diagnose is wired in as docs/diagnose.md
says: predictions through a forward hook, the pre-clip norm ``clip_grad_norm_``
returns, the robot part of the mixed loss, a global step the loop does not have,
``new_stage`` at each stage. Healthy seeds raise nothing; each induced failure is
flagged with a fix that fits this loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

torch = pytest.importorskip("torch")

from vla_eval.diagnose import Diagnose  # noqa: E402

TASKS = ("pick", "place", "stack", "pour")  # as the world fixture (conftest.py) has them
COUNTS = {"pick": 300, "place": 250, "stack": 200, "pour": 150}
RARE = {"pick": 300, "place": 250, "stack": 200, "pour": 24}

STAGES = ("align", "co-train", "specialise")

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Recipe:
    lrs: tuple = (3e-3, 3e-3, 1e-3)  # the lecture's 1e-3 / 2e-5 / 1e-5 suit a big VLM
    epochs: tuple = (2, 16, 4)
    temperature: float = 2.0
    web_ratio: float = 0.5
    batch_size: int = 32
    seed: int = 0
    blind: bool = False  # a bug that zeroes the observations (collapse)
    nan_at: int | None = None  # a corrupted batch: an observation is inf
    width: int = 64


def sampler(tasks, temperature, generator):
    """Per-sample weight n_task^(1/T - 1) (T = inf: 1 / n_task), vectorised."""
    counts = torch.bincount(tasks).double()
    power = -1.0 if math.isinf(temperature) else 1.0 / temperature - 1.0
    weights = counts[tasks] ** power
    return torch.utils.data.WeightedRandomSampler(weights, len(tasks), generator=generator)


def schedule(optimizer, total):
    """Linear warmup over 3% of the stage (from 1/warmup, not 0), then cosine decay."""
    warmup = max(1, int(0.03 * total))

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trainable(model, stage):
    for name, p in model.named_parameters():
        p.requires_grad = stage > 0 or name.startswith(("projection", "action_head"))
    return ["projection", "action_head"] if stage == 0 else ["the whole model"]


def evaluate(model, world, heldout):
    with torch.no_grad():
        err = (model.actions(heldout["obs"], heldout["task"]) - heldout["actions"]).pow(2)
        per_sample = err.mean((1, 2))
        per_task = {t: float(per_sample[heldout["task"] == i].mean()) for i, t in enumerate(TASKS)}
        web = world.web_heldout
        zeros = torch.zeros(len(web["obs"]), len(TASKS))
        logits = model.vlm_head(model.backbone(torch.cat([web["obs"], zeros], 1)))
        return {
            "heldout_loss": float(per_sample.mean()),
            "heldout_loss_per_task": per_task,
            "web_loss": float(torch.nn.functional.cross_entropy(logits, web["label"])),
            "web_accuracy": float((logits.argmax(1) == web["label"]).float().mean()),
            "web_examples": len(web["label"]),
        }


def train(world, recipe: Recipe, robot=None, heldout=None):
    """The lecture's three stages with Diagnose wired in; returns the findings."""
    robot, heldout = robot or world.robot, heldout or world.heldout
    torch.manual_seed(recipe.seed)
    model = world.model(recipe.width)
    g = torch.Generator().manual_seed(recipe.seed)
    counts = {t: int((robot["task"] == i).sum()) for i, t in enumerate(TASKS)}
    diag = Diagnose(model, clip=1.0, temperature=recipe.temperature, task_counts=counts)
    seen = {}
    # compute_loss returns a scalar: read the predictions where the action head makes them
    model.action_head.register_forward_hook(lambda m, i, out: seen.__setitem__("pred", out))
    step = 0  # the lecture's loop has no global step
    for stage, name in enumerate(STAGES):
        mixing = recipe.web_ratio if stage == 1 else 0.0
        parts = trainable(model, stage)
        diag.new_stage(name, lr=recipe.lrs[stage], trainable=parts, web_ratio=mixing)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=recipe.lrs[stage], weight_decay=0.01)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(robot["obs"], robot["task"], robot["actions"]),
            batch_size=recipe.batch_size,
            sampler=sampler(robot["task"], recipe.temperature, g),
        )
        sched = schedule(opt, recipe.epochs[stage] * len(loader))
        for _ in range(recipe.epochs[stage]):
            for obs, task, actions in loader:
                if recipe.blind:
                    obs = obs * 0.0
                if step == recipe.nan_at:
                    obs = obs.clone()
                    obs[0, 0] = math.inf
                batch = {"obs": obs, "task": task, "actions": actions}
                robot_loss = model.compute_loss(batch)
                pred = seen["pred"].view(actions.shape)
                loss = robot_loss
                if mixing:
                    idx = torch.randint(0, len(world.web["obs"]), (recipe.batch_size,), generator=g)
                    web_loss = model.compute_vlm_loss({k: v[idx] for k, v in world.web.items()})
                    loss = (1 - mixing) * robot_loss + mixing * web_loss
                opt.zero_grad()
                loss.backward()
                norm = torch.nn.utils.clip_grad_norm_(params, 1.0)  # the pre-clip norm
                diag.step(
                    step,
                    loss=robot_loss,  # the robot part: the mix changes with the stage
                    grad_norm=norm,
                    pred_actions=pred,
                    target_actions=actions,
                    task=[TASKS[i] for i in task.tolist()],
                    lr=sched.get_last_lr()[0],
                )
                opt.step()
                sched.step()
                step += 1
            diag.evaluate(step - 1, **evaluate(model, world, heldout))
    diag.flush()
    return diag


@pytest.fixture(scope="module")
def runs(world):
    cache = {}

    def run(name, recipe=Recipe(), **data):
        if name not in cache:
            cache[name] = train(world, recipe, **data)
        return cache[name]

    return run


def symptoms(diag):
    return [f.symptom for f in diag.findings]


@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_seeds_raise_nothing(runs, seed):
    diag = runs(f"healthy-{seed}", Recipe(seed=seed))
    assert diag.findings == [], [str(f) for f in diag.findings]


def test_the_lecture_s_learning_rates_under_train_rather_than_jitter(runs):
    diag = runs("recipe-lrs", Recipe(lrs=(1e-3, 2e-5, 1e-5)))
    found = symptoms(diag)
    assert "action_jitter" not in found
    [f] = [f for f in diag.findings if f.symptom == "under_training"]
    assert "stage 'co-train' base LR 2.0e-5 -> 2.0e-4" in f.fix and "train longer" in f.fix
    assert f.evidence["trend"] == "barely_moved"


def test_a_corrupted_batch_is_a_critical_nan(runs):
    diag = runs("nan", Recipe(nan_at=150))
    [f] = [f for f in diag.findings if f.severity == "critical"]
    assert (f.symptom, f.step) == ("gradient_explosion", 150)
    assert "already clips at 1" in f.fix and "log(0)" in f.fix


def test_lr_x1000_spikes_early_without_nan_and_clipping_absorbs_it(runs):
    diag = runs("lr-x1000", Recipe(lrs=(3.0, 1.0, 0.3)))
    first = diag.findings[0]
    assert first.symptom == "gradient_explosion" and first.severity == "warning"
    assert first.step < 5 and first.evidence["ratio"] > 20
    assert "already absorbing it" in first.message
    assert "clip the gradient norm" not in first.fix
    assert "stage 'align' base LR 3 -> 0.3" in first.fix


def test_blind_observations_collapse_the_predictions(runs):
    diag = runs("blind", Recipe(blind=True))
    assert "mode_collapse" in symptoms(diag)


def test_jittery_demonstrations_are_action_jitter(runs, world):
    data = world.data(COUNTS, seed=5, jitter=0.5)
    diag = runs("jittery", robot=data)
    [f] = [f for f in diag.findings if f.symptom == "action_jitter"]
    assert "demonstrations" in f.message and "smooth" in f.fix


def test_a_handful_of_noisy_demonstrations_overfits(runs, world):
    tiny = world.data(dict.fromkeys(TASKS, 8), seed=6, noise=0.5)
    recipe = Recipe(epochs=(20, 120, 20), lrs=(3e-3, 3e-3, 1e-3), width=256, batch_size=8)
    diag = runs("tiny", recipe, robot=tiny)
    [f, *_] = [f for f in diag.findings if f.symptom == "overfitting"]
    assert "keep the step-" in f.fix


def test_co_training_without_web_data_forgets(runs):
    diag = runs("robot-only", Recipe(web_ratio=0.0, lrs=(3e-3, 3e-2, 3e-4)))
    [f] = [f for f in diag.findings if f.symptom == "catastrophic_forgetting"]
    assert "put web data back in the mix" in f.fix


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_a_rare_task_is_caught_on_held_out_data_at_each_temperature(runs, world, temperature):
    hard = ("pour",)  # its mapping is wigglier than its 24 demonstrations can pin down
    robot = world.data(RARE, seed=7, hard=hard)
    heldout = world.data(dict.fromkeys(TASKS, 60), seed=8, hard=hard)
    diag = runs(f"T={temperature}", Recipe(temperature=temperature), robot=robot, heldout=heldout)
    first = diag.findings[0]
    assert first.symptom == "task_imbalance" and first.evidence["task"] == "pour"
    assert first.evidence["signal"] == "held-out loss"  # before training errors show it
    assert first.evidence["ratio"] >= 2.0 and first.evidence["train_ratio"] < 2.0
    # the temperature suggested is one the run has not already shown to fail
    assert first.evidence["temperature"] == temperature
    assert first.evidence["suggested_temperature"] > temperature
    assert f"T={temperature:g} is now" in first.fix
    assert {f.symptom for f in diag.findings} == {"task_imbalance"}
