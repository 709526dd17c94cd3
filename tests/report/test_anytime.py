"""`report --anytime` and `compare --anytime`, against scipy computed here."""

from __future__ import annotations

import json

import pytest
from scipy.stats import betabinom, binom

from vla_eval.cli import main
from vla_eval.episodes import Episode, write_episodes


def _write(path, k, n, policy, task="pick"):
    write_episodes(path, [Episode(task, "seen", s, s < k, policy=policy) for s in range(n)])
    return path


def test_report_anytime_interval_is_the_mixture_confidence_sequence(tmp_path, capsys):
    path = _write(tmp_path / "a.jsonl", 17, 20, "a")
    assert main(["report", str(path), "--anytime", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    group = body["anytime"]["groups"][0]
    assert (group["successes"], group["trials"]) == (17, 20)
    # at each bound the Beta(1/2, 1/2) mixture over the binomial reaches 1/alpha = 20
    for p in (group["lower"], group["upper"]):
        assert betabinom.pmf(17, 20, 0.5, 0.5) / binom.pmf(17, 20, p) == pytest.approx(20)
    # wider than the fixed-n Wilson interval: that is the price of looking any time
    wilson = body["groups"][0]
    assert group["lower"] < wilson["lower"] and group["upper"] > wilson["upper"]
    assert main(["report", str(path), "--anytime"]) == 0
    assert "Anytime-valid intervals" in capsys.readouterr().out


def test_compare_anytime_e_values(tmp_path, capsys):
    a = _write(tmp_path / "a.jsonl", 36, 40, "a")
    b = _write(tmp_path / "b.jsonl", 14, 40, "b")
    c = _write(tmp_path / "c.jsonl", 35, 40, "c")
    assert main(["compare", str(a), str(b), str(c), "--anytime", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    rows = {(r["a"], r["b"]): r for r in body["anytime"]["pairs"]}
    ab = rows[("a", "b")]
    # same seeds: a succeeds on seeds < 36, b on seeds < 14: 22 a-only, 0 b-only
    assert (ab["pairs"], ab["a_only"], ab["b_only"]) == (40, 22, 0)
    expected = betabinom.pmf(22, 22, 0.5, 0.5) / binom.pmf(22, 22, 0.5)
    assert ab["e_value"] == pytest.approx(expected)
    assert ab["alpha"] == pytest.approx(0.05 / 3) and ab["decided"] and ab["better"] == "a"
    assert not rows[("a", "c")]["decided"] and rows[("a", "c")]["better"] is None
    assert main(["compare", str(a), str(b), "--anytime"]) == 0
    assert "decided: a is better" in capsys.readouterr().out
