"""Running experiments (`vla-eval run --smoke`) end to end: they report and resume.

One experiment really trains each of its variants; two more start from the session's
trained smoke run copied into every variant's folder (the experiment then finds its
training finished), so they exercise evaluation, comparison, analysis and output without
training again. Every kind's analysis is checked number by number in test_analyse.py, and
every protocol's plan in test_plan.py; the seven-run hyperparameter experiment is not run
here for time.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vla_eval.cli import main
from vla_eval.experiment.run import variant_dir

PROTOCOLS = Path(__file__).parents[2] / "protocols"
EXPERIMENTS = {
    "data_mix": ["robot-only", "80/20", "50/50"],
    "temperature_sweep": ["T=0.5", "T=1", "T=2", "T=5", "T=inf"],
    "stage_ablation": ["one-stage", "three-stage"],
    "hparam_sensitivity": ["baseline", "lr/2", "lr*2", "batch/2", "batch*2", "wd/2", "wd*2"],
}


def _run(capsys, name: str, out: Path, *extra: str) -> dict:
    argv = ["run", str(PROTOCOLS / f"{name}.toml"), "--smoke", "--out", str(out), "--no-progress"]
    assert main([*argv, "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _check_result(result: dict, name: str, out: Path) -> None:
    assert result["kind"] == name
    assert [v["name"] for v in result["variants"]] == EXPERIMENTS[name]
    assert set(result["comparisons"]) == set(EXPERIMENTS[name]) - {result["baseline"]}
    for c in result["comparisons"].values():
        assert c["pairs"][0]["paired"] is True  # same seeds for every variant
    for v in result["variants"]:
        splits = {s["split"]: s["pooled"]["trials"] for s in v["success"]["splits"]}
        assert splits == {"seen": 8, "unseen": 8}  # 2 smoke trials x 4 tasks per split
    assert result["analysis"].get("answer")
    for png in result["figures"]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert (out / "experiment.md").read_text().startswith(f"# Experiment: {name}")


@pytest.mark.slow
def test_smallest_setting_trains_every_variant_and_resumes(tmp_path, capsys) -> None:
    name = "stage_ablation"
    out = tmp_path / name
    result = _run(capsys, name, out)
    _check_result(result, name, out)
    assert result["schema"] == "vla-eval/experiment/1"  # no seeds: the version-1 result
    for i, variant in enumerate(EXPERIMENTS[name], 1):
        run = json.loads((variant_dir(out, i, variant) / "train" / "run.json").read_text())
        assert run["steps"] == 24  # trained here, at the --smoke size
    # resuming a finished experiment recomputes the report without training again
    argv = ["run", str(PROTOCOLS / f"{name}.toml"), "--smoke", "--out", str(out), "--no-progress"]
    assert main([*argv, "--resume"]) == 0
    assert main(argv) == 2  # the folder is taken


@pytest.mark.slow
@pytest.mark.parametrize("name", ["data_mix", "temperature_sweep"])
def test_experiment_evaluates_compares_and_reports(tmp_path, capsys, smoke_run, name) -> None:
    out = tmp_path / name
    seeds = ["seed-0", "seed-1"] if name == "temperature_sweep" else [""]  # --smoke: 2 seeds
    for i, variant in enumerate(EXPERIMENTS[name], 1):
        for seed in seeds:
            shutil.copytree(smoke_run, variant_dir(out, i, variant) / seed / "train")
    result = _run(capsys, name, out, "--resume")
    _check_result(result, name, out)
    if seeds == [""]:  # a protocol without seeds: the experiment of old, nothing added
        assert result["schema"] == "vla-eval/experiment/1"
        assert result["provenance"]["seeds"] == {"train": 0, "online": "0..trials-1"}
        assert not any("runs" in v for v in result["variants"])
        assert not any("runs" in c for c in result["comparisons"].values())
    else:
        assert result["schema"] == "vla-eval/experiment/2"
        assert all(v["runs"]["seeds"] == [0, 1] for v in result["variants"])
