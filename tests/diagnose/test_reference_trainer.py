"""Induced failures on the reference trainer are flagged; healthy runs raise nothing.

Every run here is a plain `train(config)` of the reference TinyVLA on the built-in
world, with the Diagnose detectors at the defaults the trainer uses. A failure is
induced only through configuration, the way it happens in practice: the LR x1000,
an LR high enough to collapse the action head, jerky demonstrations kept by turning
the quality filter off, a handful of demonstrations trained on for many epochs, a
last stage without web data, and unequal task counts sampled as they come
(temperature 1). Then `vla-eval diagnose RUN_DIR` must find the same thing offline
from the run's metrics.jsonl. Runs are small (a 64-wide, 2-layer model, batches of
16, 1 thread), about 10 s each.

Each configuration in `RUNS` is trained once per module, in up to two worker
processes at a time (each run is deterministic on its own thread, so where it runs
does not matter); a test waits only for the runs it reads. What the tests assert is
what holds on any CPU: which symptom is found, in which range of steps, with which
fix, not the exact floats one machine's kernels produce.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vla_eval.cli import main  # noqa: E402
from vla_eval.diagnose.detectors import temperature_probabilities  # noqa: E402
from vla_eval.trainer.config import (  # noqa: E402
    DataConfig,
    RecipeConfig,
    SamplingConfig,
    TinyVLAConfig,
    TrainConfig,
)
from vla_eval.trainer.train import TrainResult, train  # noqa: E402

MODEL = TinyVLAConfig(width=64, depth=2, heads=2, vision_channels=16)
DATA = DataConfig(
    counts={"pick": 200, "place": 150, "stack": 100, "pour": 60},
    heldout_per_task=4,
    web_examples=512,
)
# LRs for a model trained from scratch (the recipe's 1e-3 / 2e-5 / 1e-5 suit a
# pretrained VLM); the run learns to follow its inputs within about 150 steps.
RECIPE = RecipeConfig(lrs=(3e-3, 3e-3, 1e-3), web_ratio=0.25)
HEALTHY_SEEDS = (0, 1, 2)

pytestmark = pytest.mark.slow


def config(seed: int = 0, **changes) -> TrainConfig:
    """A small healthy run; ``changes`` replace fields of `TrainConfig`."""
    base = TrainConfig(
        name=f"ref-{seed}",
        seed=seed,
        steps=260,
        batch_size=16,
        log_every=0,
        eval_every=40,
        checkpoint_every=0,
        threads=1,
        data=replace(DATA, seed=seed),
        recipe=RECIPE,
        model=MODEL,
    )
    return replace(base, **changes)


LR_X1000 = tuple(1000 * lr for lr in RECIPE.lrs)
# Every configuration, trained once per module; the order is the order tests read them.
RUNS: dict[str, TrainConfig] = {
    **{f"healthy-{seed}": config(seed) for seed in HEALTHY_SEEDS},
    "lr-x1000": config(name="lr-x1000", steps=40, recipe=replace(RECIPE, lrs=LR_X1000)),
    # LR 0.1 with clipping: no NaN, but the head ends up predicting one action for all
    "collapse": config(name="collapse", steps=230, recipe=replace(RECIPE, lrs=(3e-3, 0.1, 0.03))),
    # zigzagging, noisy demonstrations kept by turning the quality filter off
    "jerky": config(
        name="jerky", steps=230, data=replace(DATA, jerky=1.0, noise=0.5, filter=False)
    ),
    "tiny": config(
        name="tiny",
        steps=260,
        eval_every=25,
        data=replace(DATA, counts={"pick": 3, "place": 3, "stack": 2, "pour": 2}),
    ),
    # co-fine-tune with web data for half the run, then specialise on robot data only
    # (the recipe's last stage has no web data) for the other half
    "forget": config(
        name="forget",
        steps=240,
        recipe=replace(RECIPE, lrs=(3e-3, 3e-3, 3e-3), shares=(0.05, 0.5, 0.45), web_ratio=0.5),
    ),
    # the same length, keeping web data in the mix all along
    "kept": config(
        name="kept", steps=240, recipe=RecipeConfig(kind="one_stage", lr=3e-3, web_ratio=0.5)
    ),
    # batches of 32: in batches of 16 a task with 3 of 706 demonstrations is too rare
    # for the detector's minimum of samples
    "imbalance": config(
        name="imbalance",
        steps=150,
        batch_size=32,
        data=replace(DATA, counts={"pick": 400, "place": 300, "stack": 3, "pour": 3}),
        sampling=SamplingConfig(temperature=1.0),
        recipe=replace(RECIPE, web_ratio=0.0),
    ),
}


@dataclass(frozen=True)
class Run:
    """A trained run: what `train` returned and its directory."""

    result: TrainResult
    out: Path

    @property
    def symptoms(self) -> list[str]:
        """The symptoms raised live, in order."""
        return [f["symptom"] for f in self.result.findings]

    def first(self, symptom: str) -> dict:
        """The first finding of ``symptom`` raised live."""
        return next(f for f in self.result.findings if f["symptom"] == symptom)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(name)`` -> the `Run` of ``RUNS[name]``, trained once, two at a time."""
    root = tmp_path_factory.mktemp("reference")
    workers = max(1, min(2, os.cpu_count() or 1))
    # spawn: a fresh interpreter per worker, not a fork of this one's torch threads
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: dict[str, Future] = {
            name: pool.submit(train, cfg, out_dir=root / name, progress=False)
            for name, cfg in RUNS.items()
        }

        def get(name: str) -> Run:
            return Run(futures[name].result(), root / name)

        yield get
        for future in futures.values():  # runs no selected test asked for
            future.cancel()


def offline_findings(out, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["diagnose", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["findings"]


@pytest.mark.parametrize("seed", HEALTHY_SEEDS)
def test_healthy_runs_raise_nothing(runs, capsys, seed):
    run = runs(f"healthy-{seed}")
    assert run.symptoms == []
    assert offline_findings(run.out, capsys) == []
    stored = json.loads((run.out / "findings.json").read_text())
    assert stored == {"schema": "vla-eval/findings/1", "findings": []}
    # healthy means learning: the held-out action loss fell far below its start
    # (a uniform guess over 256 bins is ln 256 = 5.55)
    assert run.result.heldout["heldout_loss"] < 0.5 * np.log(256)


def test_lr_x1000_is_gradient_explosion(runs, capsys):
    run = runs("lr-x1000")
    assert "gradient_explosion" in run.symptoms
    explosions = [f for f in run.result.findings if f["symptom"] == "gradient_explosion"]
    critical = [f for f in explosions if f["severity"] == "critical"]
    assert critical, "the run went non-finite; a critical finding names the parameter"
    evidence = critical[0]["evidence"]
    # Which value overflows first depends on the CPU's kernels: a parameter's gradient
    # (named), or only the float32 total of finite gradients (the largest are named).
    assert evidence["nonfinite_kind"] in {"gradient", "norm_overflow"}
    if evidence["nonfinite_kind"] == "gradient":
        assert evidence["nonfinite_param"]
    else:
        assert evidence["largest_grad_params"] and evidence["largest_grad_params"][0][0]
    # the fix names the LR the run used and a 10x lower one
    assert f"{LR_X1000[1]:g}" in critical[0]["fix"] or "cut the LR 10x" in critical[0]["fix"]
    # offline, from metrics.jsonl alone, the first explosion is found at the same step
    offline = [f for f in offline_findings(run.out, capsys) if f["symptom"] == "gradient_explosion"]
    assert offline and offline[0]["step"] == explosions[0]["step"]


def test_extreme_lr_collapses_the_action_head(runs):
    # gradient spikes may be flagged too: both findings say to lower the LR
    run = runs("collapse")
    assert "mode_collapse" in run.symptoms
    assert not any(f["severity"] == "critical" for f in run.result.findings)  # never NaN
    f = run.first("mode_collapse")
    assert f["step"] >= 200  # judged after the warm-up only
    assert f["evidence"]["dispersion_ratio"] < 0.05
    assert f["evidence"]["spread_of"] == "expected bin"
    assert "cut the LR 10x" in f["fix"]


def test_jerky_demonstrations_without_the_filter_are_action_jitter(runs):
    # the healthy runs, on clean demonstrations, stay quiet
    run = runs("jerky")
    assert run.symptoms == ["action_jitter"]
    [f] = run.result.findings
    assert "target chunks jitter" in f["message"]
    assert f["evidence"]["target_sign_change_rate"] >= 0.4
    assert f["evidence"]["target_jerk"] >= 0.5
    assert "filter" in f["fix"] and "chunk 8 -> 16" in f["fix"]


def test_tiny_data_for_many_epochs_is_overfitting(runs, capsys):
    run = runs("tiny")
    assert "overfitting" in run.symptoms
    f = run.first("overfitting")
    ev = f["evidence"]
    assert ev["heldout_loss"] >= 1.1 * ev["best_heldout_loss"]
    assert ev["train_loss"] <= 0.95 * ev["train_loss_at_best"]
    assert f"step-{ev['best_step']} checkpoint" in f["fix"]
    # the held-out losses it saw are the ones the trainer logged
    logged = {
        r["step"]: r["heldout_loss"]
        for r in map(json.loads, (run.out / "metrics.jsonl").read_text().splitlines())
        if "heldout_loss" in r
    }
    assert logged[f["step"]] == pytest.approx(ev["heldout_loss"])
    assert min(logged.values()) == pytest.approx(ev["best_heldout_loss"])
    assert "overfitting" in [f["symptom"] for f in offline_findings(run.out, capsys)]


def test_dropping_web_data_after_cotraining_is_forgetting(runs, capsys):
    run = runs("forget")
    assert "catastrophic_forgetting" in run.symptoms
    f = run.first("catastrophic_forgetting")
    assert f["step"] > 0.55 * RUNS["forget"].steps  # in the specialisation stage
    assert f["evidence"]["web_loss"] >= 1.2 * f["evidence"]["reference_web_loss"]
    assert "web data back in the mix" in f["fix"]  # the loop dropped it: put it back
    assert "catastrophic_forgetting" in [f["symptom"] for f in offline_findings(run.out, capsys)]
    # keeping web data in the mix all along: not flagged
    assert "catastrophic_forgetting" not in runs("kept").symptoms


def test_unequal_counts_sampled_as_they_come_are_task_imbalance(runs, capsys):
    run = runs("imbalance")
    assert "task_imbalance" in run.symptoms
    f = run.first("task_imbalance")
    assert f["evidence"]["task"] in ("stack", "pour")
    assert f["evidence"]["suggested_temperature"] == 2.0
    # the fix gives the T=2 shares of the dataset's counts (training samples per task)
    run_info = json.loads((run.out / "run.json").read_text())
    p = temperature_probabilities(run_info["task_counts"], 2.0)
    n = np.array([run_info["task_counts"][t] for t in p], dtype=float)
    expected = np.sqrt(n) / np.sqrt(n).sum()  # p ~ n^(1/2), written out
    assert np.allclose(list(p.values()), expected)
    assert "T=2 gives" in f["fix"] and f"pick {expected[0]:.2g}" in f["fix"]
    assert "task_imbalance" in [f["symptom"] for f in offline_findings(run.out, capsys)]
