"""Planning an experiment (`vla-eval run --dry-run`): variants, settings, bad protocol files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vla_eval.cli import main
from vla_eval.protocol import load_protocol

PROTOCOLS = Path(__file__).parents[2] / "protocols"
EXPERIMENTS = {
    "data_mix": ["robot-only", "80/20", "50/50"],
    "temperature_sweep": ["T=0.5", "T=1", "T=2", "T=5", "T=inf"],
    "stage_ablation": ["one-stage", "three-stage"],
    "hparam_sensitivity": ["baseline", "lr/2", "lr*2", "batch/2", "batch*2", "wd/2", "wd*2"],
}


def dry(capsys, name: str, *extra: str) -> dict:
    assert main(["run", str(PROTOCOLS / f"{name}.toml"), "--dry-run", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_dry_run_lists_every_variant_with_its_settings(capsys, name) -> None:
    plan = dry(capsys, name)
    per_variant = 3 if name == "temperature_sweep" else 1  # its three training seeds
    expected = [v for v in EXPERIMENTS[name] for _ in range(per_variant)]
    assert [r["variant"] for r in plan["runs"]] == expected
    assert sum(r["baseline"] for r in plan["runs"]) == per_variant
    base = load_protocol(PROTOCOLS / "quickstart.toml").train
    for run in plan["runs"]:
        assert run["steps"] == base.steps  # every variant inherits the quickstart's length
        for key, value in run["set"].items():
            node = run["train"]
            for part in key.split("."):
                node = node[part]
            assert node == value


def test_temperature_sweep_values(capsys) -> None:
    plan = dry(capsys, "temperature_sweep")
    temps = [r["train"]["sampling"]["temperature"] for r in plan["runs"]]
    assert temps == [t for t in [0.5, 1.0, 2.0, 5.0, "inf"] for _ in range(3)]
    assert [r["seed"] for r in plan["runs"]] == [0, 1, 2] * 5
    # the sweep's own, stronger imbalance overrides the quickstart's counts
    assert plan["runs"][0]["train"]["data"]["counts"]["pour"] == 30


def test_smoke_shrinks_runs(capsys) -> None:
    plan = dry(capsys, "hparam_sensitivity", "--smoke")
    assert {r["steps"] for r in plan["runs"]} == {24}
    batch = {r["variant"]: r["train"]["batch_size"] for r in plan["runs"]}
    assert batch["batch/2"] == 32 and batch["baseline"] == 16  # the variant wins over --smoke


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            '[experiment]\nbaseline = "a"\nvariants = [{name = "a"}, {name = "b", set = {"sampling.temp" = 2}}]\n',
            "unknown key train.sampling.temp",
        ),
        (
            '[experiment]\nbaseline = "a"\nvariants = [{name = "a"}, {name = "b", colour = 1}]\n',
            "unknown key experiment.variants[1].colour",
        ),
        (
            '[experiment]\nbaseline = "z"\nvariants = [{name = "a"}, {name = "b"}]\n',
            "baseline 'z' is not one of the variants",
        ),
        (
            '[experiment]\nbaseline = "a"\nvariants = [{name = "a"}, {name = "b", set = {"steps" = "many"}}]\n',
            "train.steps must be an integer",
        ),
        (
            '[experiment]\nkind = "vibes"\nbaseline = "a"\nvariants = [{name = "a"}, {name = "b"}]\n',
            "experiment.kind must be one of",
        ),
        (
            '[experiment]\nbaseline = "a"\nvariants = [{name = "a"}, {name = "b"}]\n[evaluate]\ntrails = 3\n',
            "unknown key evaluate.trails",
        ),
    ],
)
def test_malformed_protocol_names_key_and_file(tmp_path, capsys, text, fragment) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('base = "' + str(PROTOCOLS / "smoke.toml") + '"\n' + text)
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and str(path) in err and err.count("\n") == 1


def test_missing_sections(tmp_path, capsys) -> None:
    path = tmp_path / "no_train.toml"
    path.write_text('name = "x"\n')
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "missing required section [train]" in capsys.readouterr().err
    assert main(["run", str(PROTOCOLS / "smoke.toml"), "--dry-run"]) == 2
    assert "missing required section [experiment]" in capsys.readouterr().err
