"""The success report, through the library and the `vla-eval report` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from tests.episodes.lerobot_files import SUITE, suite_file
from vla_eval.cli import main
from vla_eval.episodes import Episode, load_episodes, write_episodes
from vla_eval.report import build_report

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


def test_report_numbers_against_statsmodels(episodes):
    rep = build_report(load_episodes([episodes]), seed=3, n_bootstrap=2000)
    assert rep["schema"] == "vla-eval/report/2"
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
    rep = build_report(table, by=("task",), seed=1, n_bootstrap=500, macro="bootstrap")
    assert rep["splits"][0]["macro"]["method"] == "stratified-bootstrap-percentile"
    assert [g["task"] for g in rep["groups"]] == ["pick", "place", "pour"]
    assert rep["groups"][0]["successes"] == 27 and rep["groups"][0]["trials"] == 40
    again = build_report(table, by=("task",), seed=1, n_bootstrap=500, macro="bootstrap")
    assert rep["splits"] == again["splits"]


def test_cli_report_markdown_json_and_outputs(episodes, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", str(episodes), "--out", str(out), "--seed", "5"]) == 0
    captured = capsys.readouterr()
    assert "| pick | seen | 17 | 20 | 85.0% | 64.0–94.8% |" in captured.out
    assert "seen − unseen (pooled)" in captured.out
    assert "warning: task pour, split seen: only 4 trials" in captured.err
    data = json.loads((out / "report.json").read_text())
    assert data["schema"] == "vla-eval/report/2"
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
    assert "e.jsonl:6: skipped a truncated last line" in captured.err


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


def test_report_from_streamed_counts_equals_report_from_the_table(episodes, tmp_path):
    from vla_eval.episodes import count_episodes

    other = _write(tmp_path / "more.jsonl", {("pick", "novel"): (1, 3)})
    for macro in ("adjusted", "bootstrap"):
        from_table = build_report(load_episodes([episodes, other]), seed=2, macro=macro)
        from_counts = build_report(count_episodes([episodes, other]), seed=2, macro=macro)
        assert from_counts == from_table


def _adjusted_wald(ks, ns, z=1.959963984540054, c=2.5):
    # The mean of task rates' interval written out by hand (docs/statistics.md):
    # p~ = (k + c/T) / (n + 2c/T), centre mean(p~), se = sqrt(sum p~(1-p~)/n) / T.
    t = len(ks)
    tilde = [(k + c / t) / (n + 2 * c / t) for k, n in zip(ks, ns, strict=True)]
    centre = sum(tilde) / t
    se = sum(p * (1 - p) / n for p, n in zip(tilde, ns, strict=True)) ** 0.5 / t
    return max(0.0, centre - z * se), min(1.0, centre + z * se)


def test_task_groups_of_a_lerobot_suite_against_hand_counts(tmp_path):
    from vla_eval.episodes import count_episodes

    path = suite_file(tmp_path / "eval_info.json", SUITE)
    rep = build_report(count_episodes([path], policy_name="smolvla"))
    assert rep["policy"] == "smolvla"
    rows = {r["group"]: r for r in rep["task_groups"]}
    assert list(rows) == ["libero_spatial", "libero_object"]
    # libero_spatial: 3/4 and 1/4; libero_object: 4/4, 3/4 and 1/4
    for group, ks, ns in (
        ("libero_spatial", [3, 1], [4, 4]),
        ("libero_object", [4, 3, 1], [4] * 3),
    ):
        row = rows[group]
        assert (row["split"], row["tasks"]) == ("default", len(ks))
        k, n = sum(ks), sum(ns)
        assert (row["pooled"]["successes"], row["pooled"]["trials"]) == (k, n)
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert (row["pooled"]["lower"], row["pooled"]["upper"]) == pytest.approx((lo, hi))
        assert row["macro"]["rate"] == pytest.approx(
            sum(a / b for a, b in zip(ks, ns, strict=True)) / len(ks)
        )
        assert (row["macro"]["lower"], row["macro"]["upper"]) == pytest.approx(
            _adjusted_wald(ks, ns), abs=1e-12
        )
    (split,) = rep["splits"]  # the pooled rate over both suites
    assert (split["pooled"]["successes"], split["pooled"]["trials"]) == (12, 20)
    assert split["macro"]["rate"] == pytest.approx((0.75 + 0.25 + 1 + 0.75 + 0.25) / 5)
    assert "records no split" in rep["warnings"][0]

    by_group = build_report(count_episodes([path]), by=("group", "split"))
    assert [(g["group"], g["successes"], g["trials"]) for g in by_group["groups"]] == [
        ("libero_spatial", 4, 8),
        ("libero_object", 8, 12),
    ]


def test_by_group_without_groups_is_a_usage_error(episodes):
    from vla_eval.errors import UsageError

    with pytest.raises(UsageError, match="--by group, but no episode names a task group"):
        build_report(load_episodes([episodes]), by=("group",))
    assert build_report(load_episodes([episodes]))["task_groups"] == []
