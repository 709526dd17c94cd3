"""Several training seeds per variant: planning, running, and the runs x tasks report.

The smoke experiment here trains two seeds of one variant for real and reuses the
session's smoke run for both seeds of the baseline; the aggregated numbers are checked
against `vla_eval.stats.runs` applied in the test to counts read straight from each
run's episodes file. A protocol without seeds must give exactly the experiment of old:
the dry-run and the result keep their version-1 shape, written out here by hand.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from vla_eval.cli import main
from vla_eval.experiment.run import variant_dir
from vla_eval.stats.runs import improvement_interval, runs_interval, spread

PROTOCOLS = Path(__file__).parents[2] / "protocols"


def _protocol(tmp_path: Path, experiment: str) -> Path:
    path = tmp_path / "seeds.toml"
    path.write_text(
        f'base = "{(PROTOCOLS / "smoke.toml").as_posix()}"\nname = "seeds"\n{experiment}'
    )
    return path


TWO_SEEDS = """[experiment]
baseline = "a"
seeds = [0, 1]
variants = [{name = "a"}, {name = "b", set = {"sampling.temperature" = 2.0}}]
"""


def _dry(capsys, path: Path, *extra: str) -> dict:
    assert main(["run", str(path), "--dry-run", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_variant_seeds_override_the_experiments_and_smoke_keeps_two(tmp_path, capsys) -> None:
    path = _protocol(
        tmp_path,
        '[experiment]\nbaseline = "a"\nseeds = [5, 6, 7]\n'
        'variants = [{name = "a"}, {name = "b", seeds = [11, 12, 13, 14]}]\n',
    )
    plan = _dry(capsys, path)
    assert plan["schema"] == "vla-eval/experiment/2"
    got = [(r["variant"], r["seed"], r["train"]["seed"]) for r in plan["runs"]]
    assert got == [("a", 5, 5), ("a", 6, 6), ("a", 7, 7)] + [("b", s, s) for s in (11, 12, 13, 14)]
    smoke = _dry(capsys, path, "--smoke")
    assert [(r["variant"], r["seed"]) for r in smoke["runs"]] == [
        ("a", 5),
        ("a", 6),
        ("b", 11),
        ("b", 12),
    ]
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "b, seed 14: 24 steps" in capsys.readouterr().out


def test_protocol_without_seeds_plans_as_before(tmp_path, capsys) -> None:
    path = _protocol(
        tmp_path, '[experiment]\nbaseline = "a"\nvariants = [{name = "a"}, {name = "b"}]\n'
    )
    plan = _dry(capsys, path)
    assert plan["schema"] == "vla-eval/experiment/1"
    assert [sorted(r) for r in plan["runs"]] == [
        ["baseline", "group", "set", "steps", "train", "trials", "variant"]
    ] * 2
    assert main(["run", str(path), "--dry-run"]) == 0
    assert capsys.readouterr().out == (
        "a (baseline): 24 steps, 2 trials per task and split; sets nothing\n"
        "b: 24 steps, 2 trials per task and split; sets nothing\n"
    )


@pytest.mark.parametrize(
    ("seeds", "fragment"),
    [
        ("[1, 1]", "experiment.seeds must be distinct whole numbers"),
        ("[-3]", "experiment.seeds must be distinct whole numbers"),
        ('["x"]', "experiment.seeds[0] must be an integer"),
    ],
)
def test_bad_seeds_are_one_line(tmp_path, capsys, seeds, fragment) -> None:
    path = _protocol(
        tmp_path,
        f'[experiment]\nbaseline = "a"\nseeds = {seeds}\nvariants = [{{name = "a"}}, {{name = "b"}}]\n',
    )
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def _counts(episodes: Path) -> dict[str, tuple[int, int]]:
    """(successes, trials) per "task/split", read from the JSONL by hand."""
    wins, total = Counter(), Counter()
    for line in episodes.read_text().splitlines():
        e = json.loads(line)
        key = f"{e['task']}/{e['split']}"
        total[key] += 1
        wins[key] += bool(e["success"])
    return {k: (wins[k], total[k]) for k in total}


def _matrix(out: Path, index: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    runs = [_counts(variant_dir(out, index, name) / f"seed-{s}" / "episodes.jsonl") for s in (0, 1)]
    cols = sorted(runs[0])
    return (
        np.array([[r[c][0] for c in cols] for r in runs]),
        np.array([[r[c][1] for c in cols] for r in runs]),
    )


@pytest.mark.slow
def test_two_seeds_per_variant_train_two_runs_and_aggregate(tmp_path, capsys, smoke_run) -> None:
    path, out = _protocol(tmp_path, TWO_SEEDS), tmp_path / "exp"
    for seed in (0, 1):  # the baseline's runs are finished copies; b trains its two here
        shutil.copytree(smoke_run, variant_dir(out, 1, "a") / f"seed-{seed}" / "train")
    argv = ["run", str(path), "--smoke", "--out", str(out), "--no-progress", "--json", "--resume"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["schema"] == "vla-eval/experiment/2"
    b_runs = [variant_dir(out, 2, "b") / f"seed-{s}" / "train" for s in (0, 1)]
    losses = [(d / "metrics.jsonl").read_text() for d in b_runs]
    assert all((d / "run.json").exists() for d in b_runs) and losses[0] != losses[1]

    blocks = {v["name"]: v["runs"] for v in result["variants"]}
    for index, name in ((1, "a"), (2, "b")):
        k, n = _matrix(out, index, name)
        block = blocks[name]
        assert block["seeds"] == [0, 1] and block["successes"] == k.tolist()
        assert n.sum() == 2 * 2 * 4 * 2  # 2 runs x 2 smoke trials x 4 tasks x 2 splits
        expected = runs_interval(k, n, rng=0, n_bootstrap=5000)
        assert block["mean"]["estimate"] == pytest.approx(k.sum() / n.sum())
        assert (block["mean"]["lower"], block["mean"]["upper"]) == (expected.lower, expected.upper)
        iqm = runs_interval(k, n, "iqm", rng=0, n_bootstrap=5000)
        assert block["iqm"]["estimate"] == iqm.estimate and block["iqm"]["upper"] == iqm.upper
        assert block["spread"] == spread(k, n)
    poi = improvement_interval(_matrix(out, 2, "b"), _matrix(out, 1, "a"), rng=0, n_bootstrap=5000)
    got = result["comparisons"]["b"]["runs"]["probability_of_improvement"]
    assert (got["estimate"], got["lower"], got["upper"]) == (poi.estimate, poi.lower, poi.upper)
    md = (out / "experiment.md").read_text()
    assert "## Training seeds" in md and "seeds /" in md and "episodes" in md
    assert result["provenance"]["seeds"]["train"] == {"a": [0, 1], "b": [0, 1]}
