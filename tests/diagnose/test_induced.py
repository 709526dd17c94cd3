"""Induced failures in plain PyTorch loops are flagged; healthy loops raise nothing.

Each loop is a small MLP policy predicting 8-step chunks of 7-D actions for one of
four tasks. The failure is induced the way it happens in practice (LR x1000, a dead
action head, jittery demonstrations, tiny data, dropping a task's data, uniform-over-
data sampling of unequal task counts) and the loop calls `Diagnose` exactly as a
user's loop would, with default thresholds unless a test says otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vla_eval.diagnose import Diagnose  # noqa: E402

OBS, TASKS, CHUNK, DIM = 8, 4, 8, 7
TASK_NAMES = ("pick", "place", "stack", "pour")


class World:
    """Smooth demonstrations: per task, an affine start action plus a velocity
    that ramps along the chunk, both functions of the observation."""

    def __init__(
        self, seed: int, jitter: float = 0.0, noise: float = 0.02, label_noise: float = 0.0
    ) -> None:
        g = torch.Generator().manual_seed(1000 + seed)
        self.base = torch.randn(TASKS, OBS, DIM, generator=g) / math.sqrt(OBS)
        self.vel = torch.randn(TASKS, OBS, DIM, generator=g) / math.sqrt(OBS) / CHUNK
        self.jitter, self.noise, self.label_noise = jitter, noise, label_noise
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, tasks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(tasks)
        obs = torch.randn(n, OBS, generator=self.gen)
        h = torch.arange(CHUNK, dtype=torch.float32)[None, :, None]
        base = torch.einsum("no,nod->nd", obs, self.base[tasks])[:, None]
        vel = torch.einsum("no,nod->nd", obs, self.vel[tasks])[:, None]
        actions = base + vel * h
        if self.jitter:  # a teleoperator's tremor that depends on the state
            actions = actions + self.jitter * (-1.0) ** h * torch.sign(obs[:, :1, None])
        actions = actions + self.noise * torch.randn(actions.shape, generator=self.gen)
        if self.label_noise:  # a wrong demonstration: offset for the whole chunk
            offset = torch.randn(n, 1, DIM, generator=self.gen)
            actions = actions + self.label_noise * offset
        x = torch.cat([obs, torch.nn.functional.one_hot(tasks, TASKS).float()], dim=1)
        return x, actions


def policy(seed: int, hidden: int = 128) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(OBS + TASKS, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, CHUNK * DIM),
        torch.nn.Unflatten(1, (CHUNK, DIM)),
    )


def run(
    seed: int = 0,
    steps: int = 400,
    lr: float = 2e-3,
    opt: str = "adam",
    task_probs=(0.25, 0.25, 0.25, 0.25),
    world: World | None = None,
    model: torch.nn.Module | None = None,
    lr_at: dict[int, float] | None = None,
    web_task: int | None = 3,
    eval_every: int = 50,
    train_data: tuple | None = None,
    drop_task_after: tuple[int, int] | None = None,
    pass_tasks: bool = True,
    diag_kwargs: dict | None = None,
) -> Diagnose:
    world = world or World(seed)
    model = model or policy(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = (torch.optim.Adam if opt == "adam" else torch.optim.SGD)(params, lr=lr)
    diag = Diagnose(model, **(diag_kwargs or {}))
    gen = torch.Generator().manual_seed(seed + 7)
    probs = torch.tensor(task_probs, dtype=torch.float32)
    heldout_tasks = torch.arange(512) % TASKS
    heldout = world.sample(heldout_tasks)
    for step in range(steps):
        if lr_at and step in lr_at:
            for group in optim.param_groups:
                group["lr"] = lr_at[step]
        p = probs
        if drop_task_after and step >= drop_task_after[0]:
            p = probs.clone()
            p[drop_task_after[1]] = 0
        if train_data is None:
            tasks = torch.multinomial(p, 64, replacement=True, generator=gen)
            x, y = world.sample(tasks)
        else:
            x, y = train_data
            tasks = x[:, OBS:].argmax(dim=1)
        pred = model(x)
        loss = (pred - y).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        diag.step(
            step,
            loss=loss,
            pred_actions=pred,
            target_actions=y,
            task=[TASK_NAMES[t] for t in tasks.tolist()] if pass_tasks else None,
            lr=optim.param_groups[0]["lr"],
        )
        optim.step()
        if (step + 1) % eval_every == 0:
            with torch.no_grad():
                err = (model(heldout[0]) - heldout[1]).pow(2).flatten(1).mean(1)
            robot = err[heldout_tasks != web_task] if web_task is not None else err
            web = err[heldout_tasks == web_task].mean().item() if web_task is not None else None
            diag.evaluate(step, heldout_loss=robot.mean().item(), web_loss=web)
    diag.flush()
    return diag


def symptoms(diag: Diagnose) -> list[str]:
    return [f.symptom for f in diag.findings]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_runs_raise_nothing(seed):
    diag = run(seed=seed)
    assert diag.findings == [], [str(f) for f in diag.findings]


def test_lr_x1000_with_sgd_is_a_critical_nan_naming_the_parameter():
    diag = run(opt="sgd", lr=50.0, steps=30)  # x1000 a typical SGD LR of 0.05
    assert set(symptoms(diag)) == {"gradient_explosion"}
    first = next(f for f in diag.findings if f.severity == "critical")
    assert first.step < 10
    assert not math.isfinite(first.evidence["grad_norm"])
    assert first.evidence["nonfinite_param"] == "0.weight"
    assert "'0.weight'" in first.message
    assert "50 -> 5" in first.fix  # the LR it saw, cut 10x
    # once per episode: at most the spike warning before it and this critical one
    assert len(diag.findings) <= 2


def test_lr_x1000_with_adam_from_the_start_is_flagged_at_once():
    diag = run(lr=2.0, steps=60)
    first = diag.findings[0]
    assert (first.symptom, first.step) == ("gradient_explosion", 1)
    assert first.evidence["ratio"] > 1000


def test_lr_x1000_mid_run_is_a_spike_over_the_running_median():
    diag = run(lr_at={150: 2.0}, steps=200)
    first = diag.findings[0]
    assert (first.symptom, first.step) == ("gradient_explosion", 150) or (
        first.symptom == "gradient_explosion" and first.step in (150, 151)
    )
    assert first.evidence["ratio"] > 100
    assert "clip the gradient norm at 1.0" in first.fix


def test_a_collapsed_action_head_is_mode_collapse():
    model = policy(0)
    model[4].weight.data.zero_()  # the head ignores its input: only the bias learns
    model[4].weight.requires_grad_(False)
    diag = run(model=model, steps=300, web_task=None)
    assert symptoms(diag) == ["mode_collapse"]
    f = diag.findings[0]
    assert f.evidence["dispersion_ratio"] < 0.01
    assert 200 <= f.step <= 240  # warm-up 200, then 3 checks 10 steps apart


def test_jittery_demonstrations_are_action_jitter():
    diag = run(world=World(0, jitter=0.3), steps=300)
    assert symptoms(diag) == ["action_jitter"]
    f = diag.findings[0]
    assert "demonstrations themselves jitter" in f.message
    assert f.evidence["sign_change_rate"] > 0.8


def test_tiny_data_for_many_epochs_is_overfitting():
    world = World(0, label_noise=1.0)
    data = world.sample(torch.arange(128) % TASKS)
    diag = run(
        world=world,
        train_data=data,
        steps=300,
        eval_every=20,
        model=policy(0, hidden=256),
        lr=1e-3,
        web_task=None,
    )
    assert symptoms(diag) == ["overfitting"]
    ev = diag.findings[0].evidence
    assert ev["heldout_loss"] >= 1.1 * ev["best_heldout_loss"]
    assert ev["train_loss"] < 0.5 * ev["train_loss_at_best"]


def test_dropping_the_web_data_is_catastrophic_forgetting():
    # the "web" signal is task 3's held-out loss; its data leaves the mix at step 200
    diag = run(drop_task_after=(200, 3), steps=400, pass_tasks=False)
    assert symptoms(diag) == ["catastrophic_forgetting"]
    f = diag.findings[0]
    assert 200 < f.step <= 350
    assert f.evidence["web_loss"] >= 1.2 * f.evidence["reference_web_loss"]
    assert "keep web data in the mix" in f.fix


def test_keeping_the_web_data_raises_nothing():
    diag = run(steps=400, pass_tasks=False)
    assert diag.findings == []


def test_imbalanced_counts_sampled_uniformly_over_data_are_task_imbalance():
    counts = {"pick": 50000, "place": 30000, "stack": 2000, "pour": 500}
    n = np.array(list(counts.values()), dtype=float)
    diag = run(
        task_probs=tuple(n / n.sum()),
        steps=400,
        web_task=None,
        diag_kwargs={"task_counts": counts},
    )
    assert symptoms(diag) == ["task_imbalance"]
    f = diag.findings[0]
    assert f.evidence["task"] in ("stack", "pour")
    assert f.evidence["suggested_temperature"] == 2.0
    # the fix quotes the sampling probabilities at T=2 for the dataset counts
    # (RECIPE.md's corrected table: 0.4820, 0.3734, 0.0964, 0.0482)
    assert "T=2 gives pick 0.48, place 0.37, stack 0.096, pour 0.048" in f.fix


# --- rollouts: a point mass driven to a goal ---------------------------------------


def expert_chunk(pos: np.ndarray, goal: np.ndarray, chunk: int) -> np.ndarray:
    """The scripted expert's next `chunk` 7-D actions (dx, dy, 0, 0, 0, 0, grip)."""
    out = np.zeros((chunk, DIM))
    p = pos.copy()
    for h in range(chunk):
        delta = np.clip(0.2 * (goal - p), -0.1, 0.1)
        out[h, :2] = delta
        out[h, 6] = 1.0 if np.linalg.norm(goal - p) < 0.1 else -1.0
        p = p + delta
    return out


def rollouts(chunk: int, obs_noise: float, episodes: int = 8, horizon: int = 40):
    """Executed actions of the expert driven by noisy position estimates."""
    rng = np.random.default_rng(3)
    out = []
    for _ in range(episodes):
        pos, goal = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
        actions = []
        while len(actions) < horizon:
            seen = pos + obs_noise * rng.standard_normal(2)
            for a in expert_chunk(seen, goal, chunk):
                actions.append(a)
                pos = pos + a[:2]
        out.append(np.array(actions[:horizon]))
    return out


def test_noisy_single_step_rollouts_jitter_and_chunked_ones_do_not():
    demos = rollouts(chunk=1, obs_noise=0.0)
    noisy = Diagnose(None).evaluate(
        100, rollout_actions=rollouts(chunk=1, obs_noise=0.1), reference_actions=demos
    )
    assert [f.symptom for f in noisy] == ["action_jitter"]
    assert noisy[0].evidence["jittery_rollouts"] >= 6
    assert "chunk 1 -> 8" in noisy[0].fix
    chunked = Diagnose(None).evaluate(
        100, rollout_actions=rollouts(chunk=8, obs_noise=0.1), reference_actions=demos
    )
    assert chunked == []
    assert Diagnose(None).evaluate(100, rollout_actions=demos) == []
