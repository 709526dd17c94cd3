"""`vla-eval online --stop-when`: early stopping on the tabletop world, prefixes, resume, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from scipy.special import betaln

from vla_eval.cli import main

ARGS = ["--trials", "10", "--batch-size", "8", "--no-progress"]


def records(path: Path) -> dict[tuple[str, str, int], dict]:
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out[(rec["task"], rec["split"], rec["seed"])] = rec
    return out


def seed_order(full: dict[tuple[str, str, int], dict]) -> list[tuple[str, str, int]]:
    """The full run's keys round by round: seed 0 of every (task, split) in plan order, ..."""
    from vla_eval.envs.tabletop import TabletopEnv
    from vla_eval.online import OnlineConfig, select_tasks

    tasks = [(t.name, t.split) for t in select_tasks(TabletopEnv(), OnlineConfig(trials=10))]
    seeds = sorted({k[2] for k in full})
    return [(t, s, seed) for seed in seeds for (t, s) in tasks]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory) -> dict[tuple[str, str, int], dict]:
    out = tmp_path_factory.mktemp("full") / "full.jsonl"
    assert main(["online", "expert", *ARGS, "--out", str(out)]) == 0
    return records(out)


def test_half_width_stops_early_with_a_prefix_of_the_full_run(tmp_path, capsys, full_run) -> None:
    out = tmp_path / "stop.jsonl"
    argv = ["online", "expert", *ARGS, "--out", str(out), "--stop-when", "half-width<=0.2"]
    assert main([*argv, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    stopped = records(out)
    n = len(stopped)
    assert 0 < n < len(full_run)  # stopped early
    # A prefix of the full run in plan (round) order, episode for episode the same records
    # (within a batch the lines follow the order in which episodes finished).
    assert set(stopped) == set(seed_order(full_run)[:n])
    assert all(stopped[k] == full_run[k] for k in stopped)
    stop = body["stopping"]
    assert stop["rule"] == "half-width<=0.2" and stop["stopped"] is True
    assert stop["episodes"] == n and n % 8 == 0  # whole rounds of the 8 (task, split)
    s = sum(r["success"] for r in stopped.values())
    assert stop["interval"]["successes"] == s and stop["interval"]["half_width"] <= 0.2
    # Checked independently: at s of n the mixture ratio at p = lower bound is 1/alpha = 20.
    lower = stop["interval"]["lower"]
    log_ratio = betaln(0.5 + s, 0.5 + n - s) - betaln(0.5, 0.5) - s * math.log(lower)
    assert log_ratio == pytest.approx(math.log(20), abs=1e-6)
    # One batch earlier (n - 8 episodes) the rule did not hold yet.
    assert n == 8 or (1 - lower_bound(n - 8)) / 2 > 0.2

    # Resumed with the same rule: it stays stopped, nothing is added.
    before = out.read_bytes()
    assert main([*argv, "--resume"]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes() == before
    assert f"stopped by half-width<=0.2 after {n} episodes" in text
    # Resumed without the rule: it continues to the full run.
    assert main(["online", "expert", *ARGS, "--out", str(out), "--resume"]) == 0
    assert records(out) == full_run


def lower_bound(t: int) -> float:
    """Lower end of the 95% mixture sequence at t of t successes (bisection, written here)."""
    lo, hi = 1e-12, 1.0
    target = math.log(20)
    for _ in range(200):
        mid = (lo + hi) / 2
        value = betaln(0.5 + t, 0.5) - betaln(0.5, 0.5) - t * math.log(mid)
        lo, hi = (mid, hi) if value >= target else (lo, mid)
    return hi


def test_interrupted_stopped_run_resumes_to_the_same_file(tmp_path, full_run) -> None:
    argv = ["online", "expert", *ARGS, "--stop-when", "half-width<=0.2"]
    whole = tmp_path / "whole.jsonl"
    assert main([*argv, "--out", str(whole)]) == 0
    lines = whole.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(lines[: len(lines) - 5]))  # killed in the middle of the last batch
    assert main([*argv, "--out", str(cut), "--resume"]) == 0
    assert records(cut) == records(whole)


def test_decided_against_a_baseline(tmp_path, capsys, full_run) -> None:
    base = tmp_path / "weak.jsonl"
    with base.open("w") as f:
        for rec in full_run.values():
            f.write(json.dumps({**rec, "policy": "weak", "success": False}) + "\n")
    out = tmp_path / "d.jsonl"
    argv = ["online", "expert", *ARGS, "--out", str(out), "--stop-when", "decided"]
    assert main([*argv, "--baseline", str(base), "--json"]) == 0
    stop = json.loads(capsys.readouterr().out)["stopping"]
    n = len(records(out))
    assert stop["stopped"] and stop["episodes"] == n < len(full_run)
    c = stop["comparison"]
    assert c["better"] == "expert" and c["e_value"] >= 20 and c["pairs"] == n
    assert c["a_only"] == sum(r["success"] for r in records(out).values())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--stop-when", "half-width<0.1"], "--stop-when"),
        (["--stop-when", "decided"], "--baseline"),
        (["--stop-when", "decided", "--baseline", "missing.jsonl"], "no such episode file"),
        (["--stop-when", "decided", "--baseline", "."], "no such episode file"),
        (["--stop-when", "decided", "--baseline", "bad.jsonl"], "bad.jsonl"),
        (["--stop-when", "decided", "--baseline", "other.jsonl"], "no episode with"),
        (["--baseline", "other.jsonl"], "only with --stop-when decided"),
        (["--stop-when", "half-width<=0.1", "--shard", "1/2"], "--shard"),
    ],
)
def test_bad_stopping_input_is_one_line(tmp_path, capsys, monkeypatch, extra, message) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.jsonl").write_text('{"task": "pick", "split": "seen"}\n{"task": 1}\n')
    rec = {"task": "nope", "split": "seen", "seed": 0, "success": True, "policy": "x"}
    Path("other.jsonl").write_text(json.dumps(rec) + "\n")
    code = main(["online", "expert", *ARGS, "--out", "o.jsonl", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not Path("o.jsonl").exists() or Path("o.jsonl").stat().st_size == 0


def test_without_a_rule_the_order_is_unchanged(full_run) -> None:
    # Task-major, as before: every seed of the first (task, split) comes first.
    first_batch = list(full_run)[:8]
    assert {k[2] for k in first_batch} == set(range(8))
    assert len({(k[0], k[1]) for k in first_batch}) == 1


def test_resume_with_a_stricter_rule_continues(tmp_path, capsys, full_run) -> None:
    out = tmp_path / "s.jsonl"
    base = ["online", "expert", *ARGS, "--out", str(out)]
    assert main([*base, "--stop-when", "half-width<=0.2"]) == 0
    first = len(records(out))
    capsys.readouterr()
    assert main([*base, "--stop-when", "half-width<=0.1", "--resume", "--json"]) == 0
    stop = json.loads(capsys.readouterr().out)["stopping"]
    n = len(records(out))
    assert first < n == stop["episodes"] < len(full_run)
    assert set(records(out)) == set(seed_order(full_run)[:n])
    assert stop["interval"]["half_width"] <= 0.1
