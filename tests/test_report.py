"""Success reports and comparisons, through the library and the `vla-eval` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from vla_eval.cli import main
from vla_eval.episodes import Episode, load_episodes, write_episodes
from vla_eval.report import build_comparison, build_report, load_policies

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


def test_report_numbers_against_statsmodels(episodes):
    rep = build_report(load_episodes([episodes]), seed=3, n_bootstrap=2000)
    assert rep["schema"] == "vla-eval/report/1"
    assert rep["policy"] == "ckpt"
    assert rep["seeds"] == {"bootstrap": 3}
    got = {(g["task"], g["split"]): g for g in rep["groups"]}
    assert set(got) == set(COUNTS)
    for key, (k, n) in COUNTS.items():
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        g = got[key]
        assert (g["successes"], g["trials"]) == (k, n)
        assert g["rate"] == pytest.approx(k / n)
        assert (g["lower"], g["upper"]) == pytest.approx((lo, hi), abs=1e-12)
    splits = {s["split"]: s for s in rep["splits"]}
    assert splits["seen"]["pooled"]["successes"] == 31
    assert splits["seen"]["pooled"]["trials"] == 39
    assert splits["seen"]["tasks"] == 3
    assert splits["seen"]["macro"]["rate"] == pytest.approx((17 / 20 + 12 / 15 + 2 / 4) / 3)
    lo, hi = proportion_confint(14, 35, alpha=0.05, method="wilson")
    assert (splits["unseen"]["pooled"]["lower"], splits["unseen"]["pooled"]["upper"]) == (
        pytest.approx((lo, hi), abs=1e-12)
    )
    gap = rep["gap"]
    ref = confint_proportions_2indep(31, 39, 14, 35, method="newcomb", compare="diff")
    assert gap["estimate"] == pytest.approx(31 / 39 - 14 / 35)
    assert (gap["lower"], gap["upper"]) == pytest.approx(ref, abs=1e-12)
    assert gap["significant"] is True
    # The pour/seen group has 4 trials: its interval is wider than 0.4.
    assert any("pour" in w for w in rep["warnings"])


def test_report_by_task_only_and_same_seed_same_bootstrap(episodes):
    table = load_episodes([episodes])
    rep = build_report(table, by=("task",), seed=1, n_bootstrap=500)
    assert [g["task"] for g in rep["groups"]] == ["pick", "place", "pour"]
    assert rep["groups"][0]["successes"] == 27 and rep["groups"][0]["trials"] == 40
    again = build_report(table, by=("task",), seed=1, n_bootstrap=500)
    assert rep["splits"] == again["splits"]


def test_cli_report_markdown_json_and_outputs(episodes, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(episodes), "--out", str(out), "--seed", "5"]) == 0
    captured = capsys.readouterr()
    assert "| pick | seen | 17 | 20 | 85.0% | 64.0–94.8% |" in captured.out
    assert "seen − unseen (pooled)" in captured.out
    assert "warning: task pour, split seen: only 4 trials" in captured.err
    data = json.loads((out / "report.json").read_text())
    assert data["schema"] == "vla-eval/report/1"
    assert data["provenance"]["seeds"] == {"bootstrap": 5}
    assert "numpy" in data["provenance"]["versions"]
    png = (out / "forest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    assert main(["report", str(episodes), "--json", "--confidence", "0.9"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["inputs"]["confidence"] == 0.9
    lo, hi = proportion_confint(17, 20, alpha=0.1, method="wilson")
    assert (data["groups"][0]["lower"], data["groups"][0]["upper"]) == pytest.approx((lo, hi))


def test_report_json_is_strict_when_there_is_no_gap(tmp_path, capsys):
    path = _write(tmp_path / "e.jsonl", {("pick", "seen"): (3, 30)})
    assert main(["report", str(path), "--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text
    assert json.loads(text)["gap"] is None


def test_report_reads_truncated_file_with_warning(tmp_path, capsys):
    path = _write(tmp_path / "e.jsonl", {("pick", "seen"): (3, 5)})
    with open(path, "a") as fh:
        fh.write('{"task": "pick", "split": "se')
    assert main(["report", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["groups"][0]["trials"] == 5
    assert "e.jsonl:6: skipped a truncated final line" in captured.err


def test_report_does_not_import_torch_or_scipy(episodes):
    code = (
        "import sys, io, contextlib\n"
        "from vla_eval.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['report', {str(episodes)!r}, '--json']) == 0\n"
        "print(sorted(m for m in ('torch', 'scipy', 'matplotlib', 'statsmodels') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- bad input through the CLI: exit 2, one line, file and line named ------------------


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_cli_missing_file(tmp_path, capsys):
    err = _error(capsys, ["report", str(tmp_path / "nope.jsonl")])
    assert "nope.jsonl: no such episode file" in err


def test_cli_duplicate_episode(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    line = json.dumps({"task": "pick", "split": "seen", "seed": 3, "success": True})
    path.write_text(line + "\n" + line.replace("true", "false") + "\n")
    err = _error(capsys, ["report", str(path)])
    assert "d.jsonl:2: duplicate episode" in err and "d.jsonl:1" in err


def test_cli_malformed_line(tmp_path, capsys):
    path = tmp_path / "m.jsonl"
    good = json.dumps({"task": "pick", "split": "seen", "seed": 0, "success": True})
    path.write_text(good + "\n" + '{"task": "pick", "split": "seen", "seed": }' + "\n" + good)
    err = _error(capsys, ["report", str(path)])
    assert "m.jsonl:2: malformed JSON" in err


def test_cli_split_with_no_episodes(episodes, capsys):
    err = _error(capsys, ["report", str(episodes), "--splits", "seen,unseen,novel"])
    assert "ckpt.jsonl" in err and "split 'novel' has no episodes" in err


def test_cli_empty_file(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert "empty.jsonl: no episodes" in _error(capsys, ["report", str(path)])


def test_cli_bad_options(episodes, capsys):
    assert "--by" in _error(capsys, ["report", str(episodes), "--by", "task,colour"])
    assert "confidence" in _error(capsys, ["report", str(episodes), "--confidence", "1.5"])


def test_cli_several_policies_in_a_report(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", policy="a")
    b = _write(tmp_path / "b.jsonl", policy="b")
    assert "vla-eval compare" in _error(capsys, ["report", str(a), str(b)])


# --- compare -------------------------------------------------------------------------

TWO = {("pick", "seen"): (17, 20), ("place", "seen"): (12, 20)}


def test_compare_two_policies_unpaired_and_paired(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", TWO, policy="tuned")
    b = _write(
        tmp_path / "b.jsonl", {("pick", "seen"): (10, 20), ("place", "seen"): (9, 20)}, "base"
    )
    assert main(["compare", str(a), str(b), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["schema"] == "vla-eval/compare/1"
    pair = res["pairs"][0]
    ref = confint_proportions_2indep(29, 40, 19, 40, method="newcomb", compare="diff")
    d = pair["difference"]
    assert (d["lower"], d["upper"]) == pytest.approx(ref, abs=1e-12)
    # Same (task, split, seed) keys in both files: paired automatically, McNemar primary.
    assert pair["paired"] is True and pair["test"] == "mcnemar-exact"
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


# --- plan ----------------------------------------------------------------------------


def test_cli_plan(capsys):
    assert main(["plan", "--p0", "0.5", "--p1", "0.7"]) == 0
    assert capsys.readouterr().out.startswith("93 trials per policy")
    assert main(["plan", "--half-width", "0.1", "--p", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == "vla-eval/plan/1" and data["trials"] == 93
    assert main(["plan", "--trials", "93", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["increase"] == pytest.approx(0.2, abs=1e-3)
    assert main(["plan", "--trials", "10", "--p0", "0.9"]) == 0
    assert "none possible" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["plan"],
        ["plan", "--p0", "0.5"],
        ["plan", "--p0", "0.5", "--p1", "0.5"],
        ["plan", "--p0", "0.5", "--p1", "nan"],
        ["plan", "--p0", "x", "--p1", "0.7"],
        ["plan", "--half-width", "0.1", "--trials", "5"],
        ["plan", "--trials", "0"],
    ],
)
def test_cli_plan_bad_input(capsys, argv):
    _error(capsys, argv)


def test_forest_plot_draws_many_tasks(tmp_path):
    from vla_eval.plots import forest_plot

    rng = np.random.default_rng(0)
    labels = [f"task {i}" for i in range(12) for _ in range(3)]
    groups = ["seen", "unseen", "novel"] * 12
    est = rng.uniform(0.2, 0.8, 36)
    path = forest_plot(tmp_path / "f.png", labels, groups, est, est - 0.1, est + 0.1)
    assert path.stat().st_size > 10_000
