"""Other tools' episode files: CSV and LeRobot's eval_info.json, read without loss.

The LeRobot files are built with the structure of LeRobot's own writer and written the
way it writes them (``json.dump(info, f, indent=2)``):

* the single-environment layout comes from ``eval_policy`` in
  ``lerobot/scripts/eval.py`` (huggingface/lerobot, the hydra-era script): ``info =
  {"per_episode": [{"episode_ix", "sum_reward", "max_reward", "success", "seed"}],
  "aggregated": {"avg_sum_reward", "avg_max_reward", "pc_success", "eval_s",
  "eval_ep_s"}}`` plus ``"video_paths"``; the seed is ``start_seed + index`` or None.
* the suite layout comes from ``eval_policy_all`` in
  ``src/lerobot/scripts/lerobot_eval.py``: ``{"per_task": [{"task_group", "task_id",
  "metrics": {"sum_rewards", "max_rewards", "successes", "video_paths",
  "predicted_video_paths"}}], "per_group": {group: {"avg_sum_reward", "avg_max_reward",
  "pc_success", "n_episodes", "video_paths", "predicted_video_paths"}}, "overall":
  {..., "n_episodes", "eval_s", "eval_ep_s", ...}}``; every task is seeded from the same
  ``start_seed`` counting up, and that seed is not written.

Every count below is checked against a hand count of the lists the files are made from.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.episodes.lerobot_files import SUITE, lerobot_single, lerobot_suite, write_info
from vla_eval.episodes import count_episodes, load_episodes
from vla_eval.episodes.other_formats import parse_success
from vla_eval.errors import DataError, UsageError

# ---------------------------------------------------------------- LeRobot, suite layout


def test_suite_layout_tasks_groups_and_counts(tmp_path):
    path = write_info(tmp_path / "act" / "eval_info.json", lerobot_suite(SUITE))
    counts = count_episodes([path], policy_name="act")
    got = {c.task: (c.successes, c.trials) for c in counts.cells}
    # hand count of SUITE: 3/4, 1/4, 4/4, 3/4, 1/4
    assert got == {
        "libero_spatial/0": (3, 4),
        "libero_spatial/1": (1, 4),
        "libero_object/0": (4, 4),
        "libero_object/1": (3, 4),
        "libero_object/2": (1, 4),
    }
    assert {c.policy for c in counts.cells} == {"act"}
    assert {c.split for c in counts.cells} == {"default"}
    assert counts.task_groups == {
        "libero_spatial/0": "libero_spatial",
        "libero_spatial/1": "libero_spatial",
        "libero_object/0": "libero_object",
        "libero_object/1": "libero_object",
        "libero_object/2": "libero_object",
    }
    assert counts.episodes == 20
    (note,) = counts.notes
    assert "records no split" in note and "'default'" in note and "records no seeds" in note
    table = load_episodes([path])
    assert table.success.tolist() == [s for xs in SUITE.values() for s in xs]
    assert table.seed.tolist() == [0, 1, 2, 3] * 5  # index within each task
    assert set(table.scope.tolist()) == {str(path)}  # seeds scoped to the file


def test_suite_layout_seeds_from_lerobot_seed(tmp_path):
    path = write_info(tmp_path / "eval_info.json", lerobot_suite(SUITE))
    table = load_episodes([path], lerobot_seed=1000)
    assert table.seed.tolist() == [1000, 1001, 1002, 1003] * 5
    assert set(table.scope.tolist()) == {""}
    assert "--lerobot-seed 1000" in table.notes[0]


def test_two_suite_runs_of_one_policy_with_different_seeds_are_not_duplicates(tmp_path):
    a = write_info(tmp_path / "seed1000" / "eval_info.json", lerobot_suite(SUITE))
    b = write_info(tmp_path / "seed2000" / "eval_info.json", lerobot_suite(SUITE))
    counts = count_episodes([a, b], policy_name="act")
    assert counts.episodes == 40
    assert {c.task: c.trials for c in counts.cells}["libero_object/2"] == 8
    # The same file twice is the same episodes twice: a duplicate.
    with pytest.raises(DataError, match=r"duplicate episode .*libero_spatial/0"):
        count_episodes([a, a])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda i: i["per_group"]["libero_object"].update(n_episodes=13), "n_episodes is 13"),
        (lambda i: i["overall"].update(pc_success=55.0), r"overall\.pc_success is 55\.0"),
        (lambda i: i["per_task"][1].update(task_group=""), r"per_task\[1\]: task_group"),
        (lambda i: i["per_task"][0].update(task_id=True), r"per_task\[0\]: task_id"),
        (lambda i: i["per_task"][2]["metrics"].update(successes=[1, 2]), r"successes\[1\]"),
        (lambda i: i["per_task"][2]["metrics"].pop("successes"), "metrics.successes"),
    ],
)
def test_suite_layout_errors_name_the_file_and_entry(tmp_path, edit, message):
    info = lerobot_suite(SUITE)
    edit(info)
    path = write_info(tmp_path / "eval_info.json", info)
    for read in (count_episodes, load_episodes):
        with pytest.raises(DataError, match=message) as err:
            read([path])
        assert str(path) in str(err.value)


def test_suite_nan_rates_of_empty_groups_are_not_checked(tmp_path):
    info = lerobot_suite(SUITE)
    info["per_group"]["libero_10"] = {"pc_success": float("nan"), "n_episodes": 0}
    path = tmp_path / "eval_info.json"
    path.write_text(json.dumps(info, indent=2))  # NaN, as json.dump writes it
    assert count_episodes([path]).episodes == 20


# ---------------------------------------------------------------- LeRobot, single environment


def test_single_env_layout(tmp_path):
    successes = [True, False, True, True, False]
    path = write_info(tmp_path / "2025-01-01" / "12-00-00_pusht_diffusion" / "eval_info.json",
                      lerobot_single(successes, 1000))  # fmt: skip
    table = load_episodes([path], split="seen", policy_name="diffusion")
    assert table.task.tolist() == ["default"] * 5  # the file names no task: not the folder
    assert table.split.tolist() == ["seen"] * 5
    assert table.seed.tolist() == [1000, 1001, 1002, 1003, 1004]
    assert table.success.tolist() == successes
    assert table.policies() == ["diffusion"]
    assert set(table.scope.tolist()) == {""}  # real seeds: pairable
    counts = count_episodes([path], default_task="pusht")
    assert [(c.task, c.successes, c.trials) for c in counts.cells] == [("pusht", 3, 5)]
    assert "names no task or split" in counts.notes[0]


def test_single_env_without_seed_is_scoped_to_the_file(tmp_path):
    a = write_info(tmp_path / "a" / "eval_info.json", lerobot_single([True, False], None))
    b = write_info(tmp_path / "b" / "eval_info.json", lerobot_single([False, False], None))
    table = load_episodes([a, b])
    assert table.seed.tolist() == [0, 1, 0, 1]  # episode_ix
    assert table.scope.tolist() == [str(a), str(a), str(b), str(b)]
    assert "records no seeds" in table.notes[0]


def test_single_env_runs_with_different_seeds_are_distinct_episodes(tmp_path):
    a = write_info(tmp_path / "a" / "eval_info.json", lerobot_single([True] * 3, 1000))
    b = write_info(tmp_path / "b" / "eval_info.json", lerobot_single([False] * 3, 2000))
    counts = count_episodes([a, b])
    assert [(c.successes, c.trials) for c in counts.cells] == [(3, 6)]
    c = write_info(tmp_path / "c" / "eval_info.json", lerobot_single([False] * 3, 1002))
    with pytest.raises(DataError, match=r"c/eval_info\.json:1: duplicate .*seed 1002\) already "
                       r"read at .*a/eval_info\.json:3"):  # fmt: skip
        count_episodes([a, c])


def test_single_env_inconsistent_summary(tmp_path):
    info = lerobot_single([True, False], 0)
    info["aggregated"]["pc_success"] = 100.0
    path = write_info(tmp_path / "eval_info.json", info)
    with pytest.raises(DataError, match=r"aggregated\.pc_success is 100\.0 .* 1 successes in 2"):
        count_episodes([path])


def test_json_that_is_not_lerobot_is_rejected(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(DataError, match=r"not a LeRobot eval_info\.json"):
        load_episodes([path])


@pytest.mark.parametrize(
    "kwargs",
    [{"split": ""}, {"policy_name": " "}, {"default_task": ""}, {"lerobot_seed": 2**63}],
)
def test_bad_reader_options(tmp_path, kwargs):
    path = write_info(tmp_path / "eval_info.json", lerobot_suite(SUITE))
    with pytest.raises(UsageError):
        count_episodes([path], **kwargs)


# ---------------------------------------------------------------- CSV


def test_csv_reader(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(
        "task,split,seed,success\npick,seen,0,1\npick,seen,1,false\n\nplace,unseen,0,1.0\n"
    )
    table = load_episodes([path])
    assert table.task.tolist() == ["pick", "pick", "place"]
    assert table.success.tolist() == [True, False, True]
    assert table.line.tolist() == [2, 3, 5]
    assert table.notes == ()


def test_csv_without_split_column_uses_the_default_split_and_says_so(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("task,seed,success,group\npick,0,0.0,suite_a\npick,1,1.00,suite_a\n")
    counts = count_episodes([path], split="heldout")
    assert [(c.task, c.split, c.successes, c.trials) for c in counts.cells] == [
        ("pick", "heldout", 1, 2)
    ]
    assert counts.task_groups == {"pick": "suite_a"}
    assert counts.notes == (f"{path}: no split column; its rows are in split 'heldout' "
                            "(the default split)",)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task,split,success\npick,seen,1\n", "lacks column"),
        ("task,split,seed,success\npick,seen,x,1\n", r"runs\.csv:2: seed must be"),
        ("task,split,seed,success\npick,seen,0,maybe\n", r"runs\.csv:2: success must be"),
        ("task,split,seed,success\npick,seen,0,0.5\n", r"runs\.csv:2: success must be"),
        ("task,split,seed,success\npick,seen,0,nan\n", r"runs\.csv:2: success must be"),
        ("task,split,seed,success\npick,seen,0\n", r"runs\.csv:2: expected 4 columns"),
        ("task,split,seed,success\npick,seen,0,1\npick,seen,0,0\n", r"runs\.csv:3: duplicate"),
        ("task,seed,success,success\npick,0,1,0\n", "column 'success' 2 times"),
        ("task,seed,success,group\npick,0,1,a\npick,1,1,b\n", r"runs\.csv:3: task 'pick' is in"),
    ],
)
def test_csv_errors(tmp_path, text, message):
    path = tmp_path / "runs.csv"
    path.write_text(text)
    for read in (count_episodes, load_episodes):
        with pytest.raises(DataError, match=message):
            read([path])


TRUE_TEXT = st.sampled_from(["1", "true", "True", "TRUE", "1.0", "1.00", "yes", "t", "1e0"])
FALSE_TEXT = st.sampled_from(["0", "false", "False", "FALSE", "0.0", "0.000", "-0", "no", "f"])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["pick", "place"]),
            st.sampled_from(["seen", "unseen", None]),
            st.booleans(),
            st.data(),
        ),
        min_size=1,
        max_size=25,
    ),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_csv_success_values_property(tmp_path_factory, rows, pad):
    # Each row gets a distinct seed; the value is any accepted spelling of its outcome,
    # padded with blanks. The counts must equal a hand count of the outcomes.
    lines = ["task,split,seed,success"]
    expected: Counter = Counter()
    for seed, (task, split, ok, data) in enumerate(rows):
        text = data.draw(TRUE_TEXT if ok else FALSE_TEXT)
        split = split or "seen"
        lines.append(f"{task},{split},{seed},{pad}{text}{pad}")
        expected[(task, split, "k")] += ok
        expected[(task, split, "n")] += 1
    path = tmp_path_factory.mktemp("csv") / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    counts = count_episodes([path])
    got: Counter = Counter()
    for c in counts.cells:
        got[(c.task, c.split, "k")] += c.successes
        got[(c.task, c.split, "n")] += c.trials
    assert +got == +expected
    assert load_episodes([path]).success.tolist() == [ok for _, _, ok, _ in rows]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=8))
def test_csv_success_value_is_accepted_exactly_when_it_means_one_or_zero(text):
    flag = text.strip().lower()
    try:
        number = float(flag)
    except ValueError:
        number = None
    words_true = {"1", "true", "t", "yes", "y", "success", "succeeded"}
    words_false = {"0", "false", "f", "no", "n", "failure", "failed"}
    if flag in words_true or number == 1.0:
        assert parse_success(text, "f:2") is True
    elif flag in words_false or number == 0.0:
        assert parse_success(text, "f:2") is False
    else:
        with pytest.raises(DataError, match=r"^f:2: success must be"):
            parse_success(text, "f:2")
