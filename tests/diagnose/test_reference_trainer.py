"""Induced failures on the reference trainer are flagged; healthy runs raise nothing.

Every run here is a plain `train(config)` of the reference TinyVLA on the built-in
world, with the Diagnose detectors at the defaults the trainer uses. A failure is
induced only through configuration, the way it happens in practice: the LR x1000,
an LR high enough to collapse the action head, jerky demonstrations kept by turning
the quality filter off, a handful of demonstrations trained on for many epochs, a
last stage without web data, and unequal task counts sampled as they come
(temperature 1). Then `vla-eval diagnose RUN_DIR` must find the same thing offline
from the run's metrics.jsonl. Runs are small (a 64-wide, 2-layer model, 1 thread),
a few seconds to about 15 s each.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vla_eval.cli import main  # noqa: E402
from vla_eval.diagnose.detectors import temperature_probabilities  # noqa: E402
from vla_eval.trainer.model import TinyVLAConfig  # noqa: E402
from vla_eval.trainer.train import (  # noqa: E402
    DataConfig,
    RecipeConfig,
    SamplingConfig,
    TrainConfig,
    train,
)

MODEL = TinyVLAConfig(width=64, depth=2, heads=2, vision_channels=16)
DATA = DataConfig(
    counts={"pick": 200, "place": 150, "stack": 100, "pour": 60},
    heldout_per_task=4,
    web_examples=512,
)
# LRs for a model trained from scratch (the recipe's 1e-3 / 2e-5 / 1e-5 suit a
# pretrained VLM); the run learns to follow its inputs within about 150 steps.
RECIPE = RecipeConfig(lrs=(3e-3, 3e-3, 1e-3), web_ratio=0.25)

pytestmark = pytest.mark.slow


def config(seed: int = 0, **changes) -> TrainConfig:
    """A small healthy run; ``changes`` replace fields of `TrainConfig`."""
    base = TrainConfig(
        name=f"ref-{seed}",
        seed=seed,
        steps=260,
        batch_size=32,
        log_every=0,
        eval_every=40,
        checkpoint_every=0,
        threads=1,
        data=replace(DATA, seed=seed),
        recipe=RECIPE,
        model=MODEL,
    )
    return replace(base, **changes)


def run(tmp_path, cfg: TrainConfig):
    """Train; return (result, the symptoms raised live, the run directory)."""
    out = tmp_path / cfg.name
    result = train(cfg, out_dir=out, progress=False)
    return result, [f["symptom"] for f in result.findings], out


def offline_findings(out, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["diagnose", str(out), "--json"]) == 0
    return json.loads(capsys.readouterr().out)["findings"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_runs_raise_nothing(tmp_path, capsys, seed):
    result, symptoms, out = run(tmp_path, config(seed))
    assert symptoms == []
    assert offline_findings(out, capsys) == []
    stored = json.loads((out / "findings.json").read_text())
    assert stored == {"schema": "vla-eval/findings/1", "findings": []}
    # healthy means learning: the held-out action loss fell far below its start
    # (a uniform guess over 256 bins is ln 256 = 5.55)
    assert result.heldout["heldout_loss"] < 0.5 * np.log(256)


def test_lr_x1000_is_gradient_explosion(tmp_path, capsys):
    lrs = tuple(1000 * lr for lr in RECIPE.lrs)
    result, symptoms, out = run(
        tmp_path, config(name="lr-x1000", steps=60, recipe=replace(RECIPE, lrs=lrs))
    )
    assert "gradient_explosion" in symptoms
    explosions = [f for f in result.findings if f["symptom"] == "gradient_explosion"]
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
    assert f"{lrs[1]:g}" in critical[0]["fix"] or "cut the LR 10x" in critical[0]["fix"]
    # offline, from metrics.jsonl alone, the first explosion is found at the same step
    offline = [f for f in offline_findings(out, capsys) if f["symptom"] == "gradient_explosion"]
    assert offline and offline[0]["step"] == explosions[0]["step"]


def test_extreme_lr_collapses_the_action_head(tmp_path):
    # LR 0.1 with clipping: no NaN, but the head ends up predicting one action for all
    # (gradient spikes may be flagged too: both findings say to lower the LR)
    result, symptoms, _ = run(
        tmp_path, config(name="collapse", recipe=replace(RECIPE, lrs=(3e-3, 0.1, 0.03)))
    )
    assert "mode_collapse" in symptoms
    assert not any(f["severity"] == "critical" for f in result.findings)  # never NaN
    f = next(f for f in result.findings if f["symptom"] == "mode_collapse")
    assert f["step"] >= 200  # judged after the warm-up only
    assert f["evidence"]["dispersion_ratio"] < 0.05
    assert f["evidence"]["spread_of"] == "expected bin"
    assert "cut the LR 10x" in f["fix"]


def test_jerky_demonstrations_without_the_filter_are_action_jitter(tmp_path):
    # zigzagging, noisy demonstrations kept by turning the quality filter off (the
    # healthy runs above, on clean demonstrations, stay quiet)
    data = replace(DATA, jerky=1.0, noise=0.5, filter=False)
    result, symptoms, _ = run(tmp_path, config(name="jerky", steps=240, data=data))
    assert symptoms == ["action_jitter"]
    [f] = result.findings
    assert "target chunks jitter" in f["message"]
    assert f["evidence"]["target_sign_change_rate"] >= 0.4
    assert f["evidence"]["target_jerk"] >= 0.5
    assert "filter" in f["fix"] and "chunk 8 -> 16" in f["fix"]


def test_tiny_data_for_many_epochs_is_overfitting(tmp_path, capsys):
    data = replace(DATA, counts={"pick": 3, "place": 3, "stack": 2, "pour": 2})
    result, symptoms, out = run(tmp_path, config(name="tiny", steps=200, eval_every=25, data=data))
    assert "overfitting" in symptoms
    f = next(f for f in result.findings if f["symptom"] == "overfitting")
    ev = f["evidence"]
    assert ev["heldout_loss"] >= 1.1 * ev["best_heldout_loss"]
    assert ev["train_loss"] <= 0.95 * ev["train_loss_at_best"]
    assert f"step-{ev['best_step']} checkpoint" in f["fix"]
    # the held-out losses it saw are the ones the trainer logged
    logged = {
        r["step"]: r["heldout_loss"]
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if "heldout_loss" in r
    }
    assert logged[f["step"]] == pytest.approx(ev["heldout_loss"])
    assert min(logged.values()) == pytest.approx(ev["best_heldout_loss"])
    assert "overfitting" in [f["symptom"] for f in offline_findings(out, capsys)]


def test_dropping_web_data_after_cotraining_is_forgetting(tmp_path, capsys):
    # co-fine-tune with web data for half the run, then specialise on robot data only
    # (the recipe's last stage has no web data) for the other half
    recipe = replace(RECIPE, lrs=(3e-3, 3e-3, 3e-3), shares=(0.05, 0.5, 0.45), web_ratio=0.5)
    result, symptoms, out = run(tmp_path, config(name="forget", steps=240, recipe=recipe))
    assert "catastrophic_forgetting" in symptoms
    f = next(f for f in result.findings if f["symptom"] == "catastrophic_forgetting")
    assert f["step"] > 0.55 * 240  # in the specialisation stage
    assert f["evidence"]["web_loss"] >= 1.2 * f["evidence"]["reference_web_loss"]
    assert "keep web data in the mix" in f["fix"]
    assert "catastrophic_forgetting" in [f["symptom"] for f in offline_findings(out, capsys)]
    # keeping web data in the mix all along: not flagged
    kept = RecipeConfig(kind="one_stage", lr=3e-3, web_ratio=0.5)
    _, symptoms, _ = run(tmp_path, config(name="kept", steps=240, recipe=kept))
    assert "catastrophic_forgetting" not in symptoms


def test_unequal_counts_sampled_as_they_come_are_task_imbalance(tmp_path, capsys):
    counts = {"pick": 400, "place": 300, "stack": 3, "pour": 3}
    data = replace(DATA, counts=counts)
    result, symptoms, out = run(
        tmp_path,
        config(
            name="imbalance",
            steps=300,
            data=data,
            sampling=SamplingConfig(temperature=1.0),
            recipe=replace(RECIPE, web_ratio=0.0),
        ),
    )
    assert "task_imbalance" in symptoms
    f = next(f for f in result.findings if f["symptom"] == "task_imbalance")
    assert f["evidence"]["task"] in ("stack", "pour")
    assert f["evidence"]["suggested_temperature"] == 2.0
    # the fix gives the T=2 shares of the dataset's counts (training samples per task)
    run_info = json.loads((out / "run.json").read_text())
    p = temperature_probabilities(run_info["task_counts"], 2.0)
    n = np.array([run_info["task_counts"][t] for t in p], dtype=float)
    expected = np.sqrt(n) / np.sqrt(n).sum()  # p ~ n^(1/2), written out
    assert np.allclose(list(p.values()), expected)
    assert "T=2 gives" in f["fix"] and f"pick {expected[0]:.2g}" in f["fix"]
    assert "task_imbalance" in [f["symptom"] for f in offline_findings(out, capsys)]
