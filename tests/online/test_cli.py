"""`vla-eval online`: the expert's report, a checkpoint's rollout, bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_expert_report(tmp_path, capsys) -> None:
    from vla_eval.cli import main

    out = tmp_path / "e.jsonl"
    code = main(["online", "expert", "--trials", "4", "--out", str(out), "--no-progress", "--json"])
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["schema"] == "vla-eval/report/2"
    seen = next(s for s in body["splits"] if s["split"] == "seen")["pooled"]
    assert seen["trials"] == 16 and seen["successes"] >= 15


def test_cli_checkpoint_rollout_and_bad_input(tmp_path, capsys, smoke_checkpoint) -> None:
    from vla_eval.cli import main

    out = tmp_path / "c.jsonl"
    argv = [
        "online",
        str(smoke_checkpoint),
        "--trials",
        "2",
        "--tasks",
        "pick",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    recs = records(out)
    assert len(recs) == 4 and {r["split"] for r in recs} == {"seen", "unseen"}
    assert recs[0]["policy"] == smoke_checkpoint.stem
    capsys.readouterr()
    for bad, fragment in [
        (argv, "--resume"),  # the file exists
        ([*argv[:-1], "--resume", "--max-steps", "3", "--no-progress"], "different run"),
        (["online", str(tmp_path / "none.pt")], "no such checkpoint"),
        (
            ["online", str(smoke_checkpoint), "--splits", "train", "--out", str(tmp_path / "x")],
            "unknown split",
        ),
        (
            ["online", str(smoke_checkpoint), "--tasks", "fly", "--out", str(tmp_path / "y")],
            "unknown task",
        ),
        (["online", "expert", "--env", "mujoco"], "unknown environment"),
        (["online", "expert", "--shard", "2/2"], "shard"),
    ]:
        assert main(bad) == 2, bad
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1


def test_cli_expert_default_episodes_file(tmp_path, monkeypatch, capsys) -> None:
    from vla_eval.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["online", "expert", "--trials", "1", "--tasks", "pick", "--no-progress", "--json"]
    assert main(argv) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["episodes_file"] == "expert-tabletop.episodes.jsonl"
    assert len(records(tmp_path / "expert-tabletop.episodes.jsonl")) == 2


def test_cli_policy_option_and_shorthand_are_the_same_run(tmp_path, capsys) -> None:
    from vla_eval.cli import main

    common = ["--trials", "2", "--tasks", "pick", "--no-progress"]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["online", "expert", *common, "--out", str(a)]) == 0
    assert main(["online", "--policy", "expert", *common, "--out", str(b)]) == 0
    assert records(a) == records(b)  # same episodes, same run fingerprint, same names
