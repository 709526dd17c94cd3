"""`vla-eval diagnose`: detectors over a finished run's metrics.jsonl and over rollouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vla_eval.cli import main


def write_jsonl(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def exploding_run(tmp_path):
    """200 logged steps; the LR goes x1000 at step 120, the loss is NaN from 130."""
    rng = np.random.default_rng(0)
    records = []
    for step in range(200):
        rec = {
            "step": step,
            "loss": 1.0 / (1 + 0.01 * step),
            "grad_norm": float(0.5 + 0.1 * rng.random()),
            "lr": 2e-5,
        }
        if step >= 120:
            rec.update(grad_norm=3.1e4, lr=2e-2)
        if step >= 130:
            rec.update(loss="nan", grad_norm="inf", nonfinite_param="head.weight")
        records.append(rec)
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "metrics.jsonl", records)
    return run


def test_run_dir_explosion(tmp_path, capsys):
    run = exploding_run(tmp_path)
    assert main(["diagnose", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("step 120 gradient_explosion: grad norm 3.1e4 at step 120")
    assert "halve" not in out[0] and "cut the LR 10x (0.02 -> 0.002)" in out[0]
    assert out[1].startswith("step 130 gradient_explosion: loss is nan and gradient norm is inf")
    assert "'head.weight'" in out[1]
    assert out[2].startswith("2 findings in 200 logged steps")


def test_json_output_and_fail_on(tmp_path, capsys):
    run = exploding_run(tmp_path)
    assert main(["diagnose", str(run), "--json", "--fail-on", "critical"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "vla-eval/diagnose/1"
    assert data["kind"] == "metrics" and data["records"] == 200
    assert [f["severity"] for f in data["findings"]] == ["warning", "critical"]
    assert data["findings"][1]["evidence"]["loss"] == "nan"  # strict JSON: NaN -> "nan"
    assert "provenance" in data


def test_eval_records_overfitting_and_forgetting(tmp_path, capsys):
    records = []
    heldout = [1.0, 0.8, 0.7, 0.75, 0.8, 0.85]
    web = [2.0, 1.9, 1.9, 2.4, 2.5, 2.6]
    for i in range(60):
        rec = {"step": i, "loss": 1.0 - 0.015 * i}
        if i % 10 == 9:
            rec.update(heldout_loss=heldout[i // 10], web_loss=web[i // 10])
        records.append(rec)
    path = write_jsonl(tmp_path / "metrics.jsonl", records)
    assert main(["diagnose", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["findings"]
    # web: best 1.9, +20% = 2.28; 2.4 (step 39) trips, 2.5 (step 49) fires (patience 2)
    # held-out: best 0.7, +10% = 0.77; 0.8 (step 49) trips, 0.85 (step 59) fires
    assert [(f["symptom"], f["step"]) for f in found] == [
        ("catastrophic_forgetting", 49),
        ("overfitting", 59),
    ]


def test_per_task_losses_imbalance_with_counts(tmp_path, capsys):
    records = [
        {
            "step": i,
            "loss": 0.2,
            "loss_per_task": {"pick": 0.1, "place": 0.11, "pour": 0.8},
            "samples_per_task": {"pick": 40, "place": 23, "pour": 1},
        }
        for i in range(50)
    ]
    path = write_jsonl(tmp_path / "metrics.jsonl", records)
    counts = "pick=50000,place=30000,pour=500"
    assert main(["diagnose", str(path), "--task-counts", counts]) == 0
    out = capsys.readouterr().out
    assert "task_imbalance: rare tasks lag: pour error 0.8" in out
    # p ~ n^(1/2): sqrt(50000), sqrt(30000), sqrt(500) normalised
    p = np.sqrt([50000, 30000, 500])
    p = p / p.sum()
    assert f"T=2 gives pick {p[0]:.2f}, place {p[1]:.2f}, pour {p[2]:.3f}" in out


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path, capsys):
    path = write_jsonl(
        tmp_path / "metrics.jsonl", [{"step": 0, "loss": 1.0}], tail='{"step": 1, "lo'
    )
    assert main(["diagnose", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no findings in 1 logged steps" in out
    assert "truncated last line" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"step": 0, "loss": 1.0}\nnot json\n{"step": 2}\n', "metrics.jsonl:2: malformed JSON"),
        ('{"step": "zero", "loss": 1.0}\n', "'step' must be an integer"),
        ('{"step": 0, "loss": true}\n', "'loss' must be a number"),
        ('{"step": 0, "loss_per_task": [1, 2]}\n', "'loss_per_task' must be an object"),
        ('{"step": 0, "web_accuracy": 57}\n', "web_accuracy' must be a fraction"),
        ("[1, 2]\n", "expected a JSON object"),
        ("\n\n", "has no records"),
    ],
)
def test_malformed_metrics_exit_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "metrics.jsonl"
    path.write_text(content)
    assert main(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_inputs_exit_2(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path)]) == 2
    assert "has no metrics.jsonl" in capsys.readouterr().err
    run = exploding_run(tmp_path)
    assert main(["diagnose", str(run), "--task-counts", "pick=-3"]) == 2
    err = capsys.readouterr().err
    assert "--task-counts" in err and "-3" in err and "Traceback" not in err


def episodes(policy, actions_fn, n=6):
    rng = np.random.default_rng(1)
    return [
        {
            "schema": "vla-eval/episode/1",
            "policy": policy,
            "task": "pick",
            "split": "seen",
            "seed": seed,
            "success": True,
            "actions": actions_fn(rng).tolist(),
        }
        for seed in range(n)
    ]


def test_rollout_jitter_from_an_episodes_file(tmp_path, capsys):
    t = np.linspace(0, 1, 60)[:, None]

    def smooth(rng):
        return np.hstack([0.1 * np.sin(3 * t + rng.random()), np.zeros((60, 5)), np.ones((60, 1))])

    def shaky(rng):
        return smooth(rng) + 0.05 * rng.standard_normal((60, 7)) * (np.arange(7) < 6)

    path = write_jsonl(
        tmp_path / "episodes.jsonl",
        episodes("smooth-policy", smooth) + episodes("shaky-policy", shaky),
    )
    assert main(["diagnose", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "episodes" and data["policies"] == ["shaky-policy", "smooth-policy"]
    [f] = data["findings"]
    assert f["symptom"] == "action_jitter" and f["step"] is None
    assert f["evidence"]["jittery_rollouts"] == 6
    assert f["evidence"]["worst"][0].startswith("shaky-policy pick/seed")


def test_episodes_without_actions_exit_2(tmp_path, capsys):
    rec = {
        "schema": "vla-eval/episode/1",
        "task": "pick",
        "split": "seen",
        "seed": 0,
        "success": True,
    }
    path = write_jsonl(tmp_path / "episodes.jsonl", [rec])
    assert main(["diagnose", str(path)]) == 2
    assert "has an 'actions' list" in capsys.readouterr().err
    rec["actions"] = [[0.0, 1.0], [0.5]]
    write_jsonl(path, [rec])
    assert main(["diagnose", str(path)]) == 2
    assert "episodes.jsonl:1: 'actions' must be" in capsys.readouterr().err
