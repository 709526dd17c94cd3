"""`report` and `compare` on LeRobot's eval output and CSV, through the command line."""

from __future__ import annotations

import json

from tests.episodes.lerobot_files import suite_file
from vla_eval.cli import main

T, F = True, False
A = {("libero_spatial", 0): [T, T, F, T], ("libero_object", 0): [T, F, T, T]}
B = {("libero_spatial", 0): [T, F, F, F], ("libero_object", 0): [F, F, T, T]}


def _error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_report_names_the_policy_and_renders_task_groups(tmp_path, capsys):
    path = suite_file(tmp_path / "a" / "eval_info.json", A)
    assert main(["report", str(path), "--policy-name", "smolvla", "--json"]) == 0
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert body["policy"] == "smolvla"
    assert [(g["group"], g["pooled"]["successes"], g["pooled"]["trials"])
            for g in body["task_groups"]] == [("libero_spatial", 3, 4), ("libero_object", 3, 4)]  # fmt: skip
    assert "records no split" in captured.err
    assert main(["report", str(path), "--default-split", "unseen"]) == 0
    text = capsys.readouterr().out
    assert "## Task groups" in text and "| libero_spatial | unseen | 1 | 3/4 |" in text
    assert main(["report", str(path), "--by", "group,split", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["groups"]
    assert {(r["group"], r["trials"]) for r in rows} == {
        ("libero_spatial", 4),
        ("libero_object", 4),
    }


def test_compare_pairs_suite_output_only_with_the_seed(tmp_path, capsys):
    a = suite_file(tmp_path / "a" / "eval_info.json", A)
    b = suite_file(tmp_path / "b" / "eval_info.json", B)
    names = ["--policy-name", "smolvla", "--policy-name", "pi0"]
    assert main(["compare", str(a), str(b), *names, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pairs"][0]["paired"] is False
    assert main(["compare", str(a), str(b), *names, "--lerobot-seed", "1000", "--json"]) == 0
    pair = json.loads(capsys.readouterr().out)["pairs"][0]
    # by hand: smolvla alone succeeds at spatial 1, spatial 3 and object 0; pi0 alone nowhere
    assert (pair["a"], pair["b"], pair["paired"]) == ("smolvla", "pi0", True)
    assert (pair["a_only"], pair["b_only"]) == (3, 0)
    assert "policy name(s) for 2" in _error(
        capsys, ["compare", str(a), str(b), "--policy-name", "x"]
    )
    assert "--lerobot-seed" in _error(capsys, ["compare", str(a), str(b), "--lerobot-seed", "-1"])


def test_report_csv_without_split_and_with_float_flags(tmp_path, capsys):
    path = tmp_path / "runs.csv"
    path.write_text("task,seed,success\npick,0,1.0\npick,1,0.0\npick,2,TRUE\n")
    assert main(["report", str(path), "--default-split", "heldout", "--json"]) == 0
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)["groups"]
    assert (row["task"], row["split"], row["successes"], row["trials"]) == ("pick", "heldout", 2, 3)
    assert "no split column" in captured.err
