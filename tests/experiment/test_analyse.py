"""The experiment's analysis (`vla_eval.experiment.analyse`) checked against hand calculations.

Small synthetic experiments: episode files written here with chosen outcomes, offline
summaries and stability numbers given directly. The expected numbers come from the
outcomes themselves (counted by hand), from statsmodels' Newcombe interval and from
scipy's exact binomial test (McNemar's exact test is a binomial test on the discordant
pairs), never from the code under test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest
from statsmodels.stats.proportion import proportion_confint

from vla_eval.experiment.analyse import analyse, stability
from vla_eval.experiment.config import ExperimentConfig, Variant
from vla_eval.experiment.output import format_markdown
from vla_eval.experiment.plan import RunSpec
from vla_eval.experiment.run import compare_variants

OFFLINE = {
    "per_split": {"seen": {"loss": 1.0, "accuracy": 0.5, "within_2": 0.6, "l1": 0.1}},
    "web": {"loss": 2.0, "accuracy": 0.25},
}
STABLE = {"loss_spikes": 0, "grad_norm_var": 0.1}


def _episodes(path: Path, policy: str, outcomes: dict[tuple[str, str], list[int]]) -> str:
    """Write one episode per (task, split, seed); `outcomes` lists 1/0 per seed 0..n-1."""
    with path.open("w") as fh:
        for (task, split), wins in outcomes.items():
            for seed, win in enumerate(wins):
                rec = {"policy": policy, "task": task, "split": split, "seed": seed}
                fh.write(json.dumps({**rec, "success": bool(win)}) + "\n")
    return str(path)


def _experiment(tmp_path, kind, baseline, arms, splits=("seen",)):
    """`arms`: name -> (outcomes, group, offline, stability). Returns analysis, variants,
    comparisons and the markdown of the result."""
    exp = ExperimentConfig(
        baseline=baseline,
        variants=tuple(Variant(name, group=arm[1]) for name, arm in arms.items()),
        kind=kind,
    )
    specs = [RunSpec(v, None, 0) for v in exp.variants]
    results = {
        name: {
            "episodes": _episodes(tmp_path / f"{i}.jsonl", name, outcomes),
            "offline": offline,
            "stability": stab,
            "findings": [],
        }
        for i, (name, (outcomes, _, offline, stab)) in enumerate(arms.items())
    }
    variants, comparisons = compare_variants(exp, specs, results, splits)
    analysis = analyse(exp, variants, comparisons)
    result = {
        "experiment": kind,
        "question": "",
        "analysis": analysis,
        "smoke": False,
        "baseline": baseline,
        "variants": variants,
        "comparisons": comparisons,
        "figures": [],
    }
    return analysis, comparisons, format_markdown(result)


def _first(k: int, n: int = 20) -> list[int]:
    """Seeds 0..k-1 succeed, the rest fail."""
    return [1] * k + [0] * (n - k)


def test_hparam_effect_sign_size_interval_and_exact_p(tmp_path) -> None:
    arms = {
        "baseline": ({("pick", "seen"): _first(10)}, "", OFFLINE, STABLE),
        # learning rate: +20 points (lr/2) beats -10 points (lr*2) in size
        "lr/2": ({("pick", "seen"): _first(14)}, "learning rate", OFFLINE, STABLE),
        "lr*2": ({("pick", "seen"): _first(9)}, "learning rate", OFFLINE, STABLE),
        # batch size: seeds 2..19 succeed: 18/20, +40 points, 2 lost and 10 gained
        "batch*2": ({("pick", "seen"): [0, 0] + [1] * 18}, "batch size", OFFLINE, STABLE),
        # weight decay: only a loss, -20 points
        "wd*2": ({("pick", "seen"): _first(6)}, "weight decay", OFFLINE, STABLE),
    }
    analysis, _, _ = _experiment(tmp_path, "hparam_sensitivity", "baseline", arms)
    effects = analysis["effects"]
    assert set(effects) == {"learning rate", "batch size", "weight decay"}

    expected = {  # group: (variant, k_variant, baseline-only wins, variant-only wins)
        "learning rate": ("lr/2", 14, 0, 4),
        "batch size": ("batch*2", 18, 2, 10),
        "weight decay": ("wd*2", 6, 4, 0),
    }
    for group, (variant, k, lost, gained) in expected.items():
        e = effects[group]
        assert e["variant"] == variant
        assert e["effect"] == pytest.approx((k - 10) / 20, abs=1e-12)  # variant - baseline
        # the arms share seeds: the paired Newcombe interval (variant - baseline)
        lo, hi = _newcombe_paired(k - gained, gained, lost, 20 - k - lost)
        assert e["interval"] == "newcombe-paired"
        assert e["lower"] == pytest.approx(lo, abs=1e-9)
        assert e["upper"] == pytest.approx(hi, abs=1e-9)
        assert e["lower"] <= e["effect"] <= e["upper"]
        p = binomtest(min(lost, gained), lost + gained, 0.5).pvalue  # McNemar exact
        assert e["p_value"] == pytest.approx(p, rel=1e-9)
        assert e["significant"] == (p <= 0.05 and not lo <= 0 <= hi)
    assert effects["weight decay"]["effect"] < 0 < effects["learning rate"]["effect"]
    assert analysis["most_sensitive"] == "batch size"
    assert "batch*2 changes it by +40.0 points" in analysis["answer"]


def test_temperature_sweep_best_worst_task_rate_uses_seen_only(tmp_path) -> None:
    def arm(seen: dict[str, int], unseen_pour: int = 10):
        outcomes = {(t, "seen"): _first(k, 10) for t, k in seen.items()}
        outcomes.update({(t, "unseen"): _first(10, 10) for t in seen})
        outcomes[("pour", "unseen")] = _first(unseen_pour, 10)
        return outcomes, "", OFFLINE, STABLE

    arms = {
        "T=1": arm({"pick": 10, "place": 8, "pour": 1}),
        # best: worst task 5/10, mean 21/30; its unseen pour (0/10) must not count
        "T=2": arm({"pick": 9, "place": 7, "pour": 5}, unseen_pour=0),
        "T=5": arm({"pick": 6, "place": 5, "pour": 5}),  # same worst, lower mean
        "T=inf": arm({"pick": 3, "place": 3, "pour": 3}),
    }
    analysis, comparisons, _ = _experiment(
        tmp_path, "temperature_sweep", "T=1", arms, splits=("seen", "unseen")
    )
    assert analysis["worst_task_rate"] == pytest.approx(
        {"T=1": 0.1, "T=2": 0.5, "T=5": 0.5, "T=inf": 0.3}
    )
    assert analysis["mean_task_rate"] == pytest.approx(
        {"T=1": 19 / 30, "T=2": 21 / 30, "T=5": 16 / 30, "T=inf": 9 / 30}
    )
    assert analysis["best"] == "T=2"
    verdict = comparisons["T=2"]["pairs"][0]["verdict"]
    assert analysis["answer"] == (
        f"T=2 balances common and rare tasks best (worst task 50%, mean 70%); against T=1: {verdict}"
    )


def test_data_mix_table_and_answer(tmp_path) -> None:
    def offline(action: float, web: float | None) -> dict:
        per_split = {"seen": {"loss": 1.0, "accuracy": action, "within_2": 0.9, "l1": 0.1}}
        return {"per_split": per_split, **({"web": {"accuracy": web}} if web is not None else {})}

    episodes = {("pick", "seen"): _first(5, 10)}
    arms = {
        "robot-only": (episodes, "", offline(0.42, None), STABLE),
        "80/20": (episodes, "", offline(0.40, 0.30), STABLE),
        "50/50": (episodes, "", offline(0.35, 0.55), STABLE),
    }
    analysis, _, md = _experiment(tmp_path, "data_mix", "80/20", arms)
    assert analysis["action_accuracy"] == {"robot-only": 0.42, "80/20": 0.40, "50/50": 0.35}
    assert analysis["language_retention"] == {"robot-only": None, "80/20": 0.30, "50/50": 0.55}
    assert analysis["answer"] == (
        "held-out action accuracy is highest with robot-only (42.0%); language retention "
        "(web VQA accuracy) is highest with 50/50 (55.0%)"
    )
    # the variants table: seen success 5/10 with its Wilson interval, accuracies, n/a
    lo, hi = proportion_confint(5, 10, method="wilson")
    row = next(line for line in md.splitlines() if line.startswith("| robot-only |"))
    assert f"50.0% ({100 * lo:.1f}%–{100 * hi:.1f}%), 5/10" in row
    assert "| 42.0% | n/a |" in row


def test_stage_ablation_answer_lists_success_and_stability(tmp_path) -> None:
    arms = {
        "one-stage": (
            {("pick", "seen"): _first(8)},
            "",
            OFFLINE,
            {"loss_spikes": 3, "grad_norm_var": 0.125},
        ),
        "three-stage": (
            {("pick", "seen"): _first(12)},
            "",
            OFFLINE,
            {"loss_spikes": 0, "grad_norm_var": 0.03125},
        ),
    }
    analysis, comparisons, _ = _experiment(tmp_path, "stage_ablation", "three-stage", arms)
    assert analysis["stability"]["one-stage"]["loss_spikes"] == 3
    verdict = comparisons["one-stage"]["pairs"][0]["verdict"]
    assert analysis["answer"] == (
        "one-stage: seen success 40.0%, 3 loss spikes, grad-norm variance 0.125; "
        "three-stage: seen success 60.0%, 0 loss spikes, grad-norm variance 0.0312. " + verdict
    )


def test_stability_counts_spikes_and_nonfinite(tmp_path) -> None:
    losses = [1.0] * 20 + [5.0] + [1.0] * 10 + ["nan"] + [1.0] * 5
    grads = [0.5, 1.5] * 18 + [0.5]
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        "".join(
            json.dumps({"step": i, "loss": loss, "grad_norm": g}) + "\n"
            for i, (loss, g) in enumerate(zip(losses, grads, strict=True))
        )
    )
    s = stability(path)
    assert s["loss_spikes"] == 2 and s["nonfinite_steps"] == 1  # the 5.0 (5x median) and the nan
    assert s["grad_norm_var"] == pytest.approx(float(np.var(grads)))


def _newcombe_paired(a, b, c, d, alpha=0.05):
    """Newcombe (1998, Stat. Med. 17:2635, method 10) from statsmodels' Wilson intervals:
    a both succeed, b only the first, c only the second, d neither."""
    import math

    from statsmodels.stats.proportion import proportion_confint

    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = proportion_confint(a + b, n, alpha, "wilson")
    l2, u2 = proportion_confint(a + c, n, alpha, "wilson")
    cross = a * d - b * c
    num = (cross - n / 2 if cross > n / 2 else 0.0) if cross >= 0 else cross
    den = (a + b) * (c + d) * (a + c) * (b + d)
    phi = num / math.sqrt(den) if den else 0.0
    lo = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    hi = p1 - p2 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    return max(lo, -1.0), min(hi, 1.0)
