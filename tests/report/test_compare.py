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


# LeRobot's eval_info.json, with the structure of its own writer: `eval_policy` in
# lerobot/scripts/eval.py (per_episode / aggregated, seed = --seed + index) and
# `eval_policy_all` in src/lerobot/scripts/lerobot_eval.py (per_task / per_group /
# overall, no seed written), both saved with json.dump(info, f, indent=2).
def _lerobot_single(path, flags, start_seed):
    rows = [
        {"episode_ix": i, "sum_reward": float(f), "max_reward": float(f), "success": f,
         "seed": start_seed + i}
        for i, f in enumerate(flags)
    ]  # fmt: skip
    aggregated = {"avg_sum_reward": sum(flags) / len(flags), "avg_max_reward": sum(flags) / len(flags),
                  "pc_success": 100 * sum(flags) / len(flags), "eval_s": 3.0, "eval_ep_s": 0.1}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"per_episode": rows, "aggregated": aggregated, "video_paths": []}, f, indent=2)
    return path


def _lerobot_suite(path, flags_per_task):
    per_task = [
        {"task_group": "libero_spatial", "task_id": tid,
         "metrics": {"sum_rewards": [float(x) for x in fl], "max_rewards": [float(x) for x in fl],
                     "successes": fl, "video_paths": [], "predicted_video_paths": []}}
        for tid, fl in enumerate(flags_per_task)
    ]  # fmt: skip
    flat = [x for fl in flags_per_task for x in fl]
    agg = {"pc_success": 100 * sum(flat) / len(flat), "n_episodes": len(flat)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"per_task": per_task, "per_group": {"libero_spatial": agg}, "overall": agg}, f,
                  indent=2)  # fmt: skip
    return path


A_FLAGS = [True, True, False, True, True, False, True, True, True, False]
B_FLAGS = [True, False, False, False, True, False, False, True, True, True]


def test_lerobot_runs_with_the_same_seed_are_paired_and_named(tmp_path):
    a = _lerobot_single(tmp_path / "act" / "eval_info.json", A_FLAGS, 1000)
    b = _lerobot_single(tmp_path / "diffusion" / "eval_info.json", B_FLAGS, 1000)
    res = build_comparison(load_policies([a, b], ["act", "diffusion"]))
    pair = res["pairs"][0]
    assert (pair["a"], pair["b"]) == ("act", "diffusion")
    assert pair["paired"] is True and pair["test"] == "mcnemar-exact"
    # by hand: A only at episodes 1, 3, 6 (3); B only at episode 9 (1); both 0, 4, 7, 8
    assert (pair["a_only"], pair["b_only"]) == (3, 1)
    assert pair["mcnemar_p"] == pytest.approx(mcnemar([[4, 3], [1, 2]], exact=True).pvalue)
    assert any("names no task or split" in n for n in res["notes"])


def test_lerobot_runs_with_different_seeds_are_not_paired(tmp_path):
    a = _lerobot_single(tmp_path / "a" / "eval_info.json", A_FLAGS, 1000)
    b = _lerobot_single(tmp_path / "b" / "eval_info.json", B_FLAGS, 2000)
    res = build_comparison(load_policies([a, b], ["act", "diffusion"]))
    assert res["pairs"][0]["paired"] is False
    assert any("do not share (task, split, seed)" in n for n in res["notes"])


def test_lerobot_suite_output_pairs_only_when_the_seed_is_given(tmp_path):
    a = _lerobot_suite(tmp_path / "a" / "eval_info.json", [A_FLAGS[:5], A_FLAGS[5:]])
    b = _lerobot_suite(tmp_path / "b" / "eval_info.json", [B_FLAGS[:5], B_FLAGS[5:]])
    res = build_comparison(load_policies([a, b], ["smolvla", "pi0"]))
    assert res["pairs"][0]["paired"] is False
    assert any("seeds of smolvla and pi0 are not recorded" in n for n in res["notes"])
    from vla_eval.errors import UsageError

    with pytest.raises(UsageError, match=r"records no seeds .*--lerobot-seed"):
        build_comparison(load_policies([a, b], ["smolvla", "pi0"]), paired=True)
    res = build_comparison(load_policies([a, b], ["smolvla", "pi0"], lerobot_seed=1000))
    pair = res["pairs"][0]
    assert pair["paired"] is True and (pair["a_only"], pair["b_only"]) == (3, 1)
    tasks = {r["task"]: (r["successes_a"], r["successes_b"]) for r in res["per_task"]}
    assert tasks == {"libero_spatial/0": (4, 2), "libero_spatial/1": (3, 3)}


def test_policy_names_must_match_the_files(tmp_path):
    from vla_eval.errors import UsageError

    a = _lerobot_single(tmp_path / "a" / "eval_info.json", A_FLAGS, 0)
    b = _lerobot_single(tmp_path / "b" / "eval_info.json", B_FLAGS, 0)
    with pytest.raises(UsageError, match="1 policy name"):
        load_policies([a, b], ["act"])
    with pytest.raises(UsageError, match="policy names must differ"):
        load_policies([a, b], ["act", "act"])
