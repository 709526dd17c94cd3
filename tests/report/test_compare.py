"""Policy comparisons, through the library and the `vla-eval compare` command line."""

from __future__ import annotations

import json

import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from vla_eval.cli import main
from vla_eval.episodes import Episode, write_episodes
from vla_eval.report import build_comparison, load_policies

# (task, split) -> (successes, trials)
COUNTS = {
    ("pick", "seen"): (17, 20),
    ("pick", "unseen"): (10, 20),
    ("place", "seen"): (12, 15),
    ("place", "unseen"): (4, 15),
    ("pour", "seen"): (2, 4),
}


def _write(path, counts=COUNTS, policy="ckpt", flip=()):
    eps = []
    for (task, split), (k, n) in counts.items():
        for seed in range(n):
            ok = seed < k
            if (task, split, seed) in flip:
                ok = not ok
            eps.append(Episode(task, split, seed, ok, policy=policy))
    write_episodes(path, eps)
    return path


@pytest.fixture
def episodes(tmp_path):
    return _write(tmp_path / "ckpt.jsonl")


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


TWO = {("pick", "seen"): (17, 20), ("place", "seen"): (12, 20)}


def test_compare_two_policies_unpaired_and_paired(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", TWO, policy="tuned")
    b = _write(
        tmp_path / "b.jsonl", {("pick", "seen"): (10, 20), ("place", "seen"): (9, 20)}, "base"
    )
    assert main(["compare", str(a), str(b), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["schema"] == "vla-eval/compare/2"
    pair = res["pairs"][0]
    # Same (task, split, seed) keys in both files: paired automatically, McNemar primary,
    # and the interval is the paired one (not the unpaired Newcombe interval).
    assert pair["paired"] is True and pair["test"] == "mcnemar-exact"
    assert pair["difference"]["method"] == "newcombe-paired"
    unpaired = build_comparison(load_policies([a, b]), paired=False)["pairs"][0]
    ref = confint_proportions_2indep(29, 40, 19, 40, method="newcomb", compare="diff")
    d = unpaired["difference"]
    assert d["method"] == "newcombe" and unpaired["test"] == "boschloo"
    assert (d["lower"], d["upper"]) == pytest.approx(ref, abs=1e-12)
    # A's successes are seeds < k, so A succeeds wherever B does: a_only = 10, b_only = 0.
    assert (pair["a_only"], pair["b_only"]) == (10, 0)
    ref_p = mcnemar([[19, 10], [0, 11]], exact=True).pvalue
    assert pair["mcnemar_p"] == pytest.approx(ref_p)
    assert [r["policy"] for r in res["ranking"]] == ["tuned", "base"]
    per_task = {r["task"]: r for r in res["per_task"]}
    assert per_task["pick"]["successes_a"] == 17 and per_task["pick"]["successes_b"] == 10
    holm = multipletests([per_task["pick"]["p_value"], per_task["place"]["p_value"]], method="holm")
    assert [per_task["pick"]["p_holm"], per_task["place"]["p_holm"]] == pytest.approx(list(holm[1]))

    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "tuned beats base by +25.0 points" in text


def test_compare_not_significant_is_said_plainly(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", {("pick", "seen"): (11, 20)}, "a")
    b = _write(tmp_path / "b.jsonl", {("pick", "seen"): (10, 20)}, "b", flip={("pick", "seen", 15)})
    assert main(["compare", str(a), str(b)]) == 0
    assert "No significant difference between a and b" in capsys.readouterr().out


def test_compare_three_policies_holm_and_ranking(tmp_path):
    paths = [
        _write(tmp_path / "p1.jsonl", {("pick", "seen"): (45, 50)}, "strong"),
        _write(tmp_path / "p2.jsonl", {("pick", "seen"): (42, 50)}, "also-strong"),
        _write(tmp_path / "p3.jsonl", {("pick", "seen"): (20, 50)}, "weak"),
    ]
    res = build_comparison(load_policies(paths), paired=False)
    assert len(res["pairs"]) == 3
    raw = [p["p_value"] for p in res["pairs"]]
    assert [p["p_holm"] for p in res["pairs"]] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    assert all(p["test"] == "boschloo" for p in res["pairs"])
    groups = {r["policy"]: r["group"] for r in res["ranking"]}
    assert groups == {"strong": "a", "also-strong": "a", "weak": "b"}
    assert [r["rank"] for r in res["ranking"]] == [1, 2, 3]


def test_compare_policies_named_after_files_when_records_have_none(tmp_path):
    a, b = tmp_path / "base.csv", tmp_path / "tuned.csv"
    a.write_text("task,split,seed,success\npick,seen,0,1\npick,seen,1,0\n")
    b.write_text("task,split,seed,success\npick,seen,0,1\npick,seen,1,1\n")
    assert [n for n, _ in load_policies([a, b])] == ["base", "tuned"]


def test_compare_paired_requires_partners(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", {("pick", "seen"): (5, 10)}, "a")
    b = _write(tmp_path / "b.jsonl", {("pick", "seen"): (5, 8)}, "b")
    err = _error(capsys, ["compare", str(a), str(b), "--paired"])
    assert "a.jsonl:9" in err and "has no partner in b" in err
    # Without --paired the tests are unpaired, with a note.
    assert main(["compare", str(a), str(b), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["pairs"][0]["paired"] is False
    assert "unpaired" in captured.err


def test_compare_needs_two_policies(episodes, capsys):
    assert "at least two" in _error(capsys, ["compare", str(episodes)])
