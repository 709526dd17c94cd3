"""Episode records: writing, reading, validation, duplicates, truncation, other formats."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.episodes import (
    SCHEMA,
    Episode,
    EpisodeWriter,
    TruncatedLineWarning,
    load_episodes,
    read_episodes,
    write_episodes,
)
from vla_eval.errors import DataError, UsageError


def _line(**kw):
    rec = {"task": "pick", "split": "seen", "seed": 0, "success": True}
    rec.update(kw)
    return json.dumps(rec)


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "e.jsonl"
    ep = Episode(
        "pick",
        "unseen",
        7,
        False,
        policy="ckpt-2000",
        steps=41,
        episode_return=0.5,
        instruction="pick up the red block",
        env={"name": "tabletop", "version": "1"},
        extra={"actions": [[0.1, 0.2]]},
    )
    with EpisodeWriter(path) as w:
        w.write(ep)
    raw = json.loads(path.read_text().splitlines()[0])
    assert raw["schema"] == SCHEMA and raw["return"] == 0.5 and raw["actions"] == [[0.1, 0.2]]
    assert read_episodes([path]) == [ep]


def test_writer_appends_one_line_per_episode_and_flushes(tmp_path):
    path = tmp_path / "e.jsonl"
    w = EpisodeWriter(path, fsync=True)
    w.write(Episode("pick", "seen", 0, True))
    # Readable before close: the line was flushed.
    assert len(load_episodes([path])) == 1
    w.write({"task": "pick", "split": "seen", "seed": 1, "success": False})
    w.close()
    with EpisodeWriter(path) as w2:  # reopening appends
        w2.write(Episode("pick", "seen", 2, True))
    table = load_episodes([path])
    assert table.seed.tolist() == [0, 1, 2]
    assert table.success.tolist() == [True, False, True]
    with pytest.raises(UsageError):
        w.write(Episode("pick", "seen", 3, True))


def test_writer_rejects_invalid_record(tmp_path):
    with EpisodeWriter(tmp_path / "e.jsonl") as w, pytest.raises(DataError, match="seed"):
        w.write({"task": "pick", "split": "seen", "seed": "7", "success": True})


def test_writer_cuts_a_truncated_tail_before_appending(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(seed=0) + "\n" + _line(seed=1)[:20])
    with pytest.warns(TruncatedLineWarning, match=r"e\.jsonl:2"), EpisodeWriter(path) as w:
        w.write(Episode("pick", "seen", 2, False))
    table = load_episodes([path])
    assert table.seed.tolist() == [0, 2]


def test_truncated_final_line_is_skipped_with_warning(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(seed=0) + "\n" + _line(seed=1) + "\n" + _line(seed=2)[:15])
    with pytest.warns(TruncatedLineWarning, match=r"e\.jsonl:3"):
        table = load_episodes([path])
    assert len(table) == 2


def test_final_line_without_newline_but_complete_is_read(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(seed=0) + "\n" + _line(seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_episodes([path])) == 2


def test_malformed_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(seed=0) + "\n{not json\n" + _line(seed=2) + "\n")
    with pytest.raises(DataError, match=r"e\.jsonl:2: malformed JSON"):
        load_episodes([path])


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"task": "pick", "split": "seen", "seed": 0}, "missing required key 'success'"),
        ({"task": "pick", "split": "seen", "seed": 1.5, "success": True}, "'seed' must be"),
        ({"task": "pick", "split": "seen", "seed": True, "success": True}, "'seed' must be"),
        ({"task": "pick", "split": "seen", "seed": 0, "success": 1}, "'success' must be"),
        ({"task": "", "split": "seen", "seed": 0, "success": True}, "'task' must be"),
        ({"task": "pick", "split": 3, "seed": 0, "success": True}, "'split' must be"),
        ({"task": "p", "split": "s", "seed": 0, "success": True, "policy": 3}, "'policy'"),
        ({"task": "p", "split": "s", "seed": 0, "success": True, "steps": -1}, "'steps'"),
        (
            {"schema": "vla-eval/episode/9", "task": "p", "split": "s", "seed": 0, "success": True},
            "unsupported record schema",
        ),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_invalid_records_are_rejected_with_location(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(_line(seed=100) + "\n" + json.dumps(record) + "\n")
    with pytest.raises(DataError, match=message) as info:
        load_episodes([path])
    assert "bad.jsonl:2" in str(info.value)


def test_duplicates_are_rejected_across_files_with_both_locations(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(_line(seed=0) + "\n" + _line(seed=1) + "\n")
    b.write_text(_line(seed=2) + "\n" + _line(seed=1) + "\n")
    with pytest.raises(DataError, match=r"b\.jsonl:2: duplicate episode.*a\.jsonl:2"):
        load_episodes([a, b])


def test_same_seed_under_different_policies_is_not_a_duplicate(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(seed=0, policy="a") + "\n" + _line(seed=0, policy="b") + "\n")
    table = load_episodes([path])
    assert table.policies() == ["a", "b"]


def test_missing_file_and_folder_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="no such episode file"):
        load_episodes([tmp_path / "nope.jsonl"])
    with pytest.raises(UsageError, match="is a folder"):
        load_episodes([tmp_path])


def test_csv_reader(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text(
        "task,split,seed,success\npick,seen,0,1\npick,seen,1,false\n\nplace,unseen,0,TRUE\n"
    )
    table = load_episodes([path])
    assert table.task.tolist() == ["pick", "pick", "place"]
    assert table.success.tolist() == [True, False, True]
    assert table.line.tolist() == [2, 3, 5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task,seed,success\npick,0,1\n", "lacks column"),
        ("task,split,seed,success\npick,seen,x,1\n", r"runs\.csv:2: seed must be"),
        ("task,split,seed,success\npick,seen,0,maybe\n", r"runs\.csv:2: success must be"),
        ("task,split,seed,success\npick,seen,0\n", r"runs\.csv:2: expected 4 columns"),
        ("task,split,seed,success\npick,seen,0,1\npick,seen,0,0\n", r"runs\.csv:3: duplicate"),
    ],
)
def test_csv_errors(tmp_path, text, message):
    path = tmp_path / "runs.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_episodes([path])


def _lerobot_single(successes, seeds):
    # Layout written by lerobot's eval script for one environment.
    return {
        "per_episode": [
            {
                "episode_ix": i,
                "sum_reward": float(s),
                "max_reward": float(s),
                "success": s,
                "seed": seed,
            }
            for i, (s, seed) in enumerate(zip(successes, seeds, strict=True))
        ],
        "aggregated": {
            "avg_sum_reward": float(np.mean(successes)),
            "avg_max_reward": float(np.mean(successes)),
            "pc_success": 100 * float(np.mean(successes)),
            "eval_s": 12.5,
            "eval_ep_s": 2.5,
        },
    }


def test_lerobot_single_env_eval_info(tmp_path):
    folder = tmp_path / "pusht"
    folder.mkdir()
    path = folder / "eval_info.json"
    path.write_text(json.dumps(_lerobot_single([True, False, True], [1000, 1001, 1002]), indent=2))
    table = load_episodes([path], split="seen")
    assert table.task.tolist() == ["pusht"] * 3
    assert table.split.tolist() == ["seen"] * 3
    assert table.seed.tolist() == [1000, 1001, 1002]
    assert table.success.tolist() == [True, False, True]


def test_lerobot_seedless_episodes_fall_back_to_index(tmp_path):
    path = tmp_path / "eval_info.json"
    path.write_text(json.dumps(_lerobot_single([True, False], [None, None])))
    assert load_episodes([path]).seed.tolist() == [0, 1]


def test_lerobot_multi_task_eval_info(tmp_path):
    # Layout written by lerobot-eval for suites (e.g. LIBERO): per_task / per_group / overall.
    info = {
        "per_task": [
            {
                "task_group": "libero_spatial",
                "task_id": tid,
                "metrics": {
                    "sum_rewards": [1.0, 0.0],
                    "max_rewards": [1.0, 0.0],
                    "successes": flags,
                    "video_paths": [],
                },
            }
            for tid, flags in ((0, [True, False]), (1, [False, False]))
        ],
        "per_group": {"libero_spatial": {"pc_success": 25.0, "n_episodes": 4}},
        "overall": {"pc_success": 25.0, "n_episodes": 4},
    }
    path = tmp_path / "eval_info.json"
    path.write_text(json.dumps(info))
    table = load_episodes([path])
    assert table.task.tolist() == ["libero_spatial/0"] * 2 + ["libero_spatial/1"] * 2
    assert table.seed.tolist() == [0, 1, 0, 1]
    assert table.success.tolist() == [True, False, False, False]
    assert table.split.tolist() == ["default"] * 4


def test_json_that_is_not_lerobot_is_rejected(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(DataError, match=r"not a LeRobot eval_info\.json"):
        load_episodes([path])


def test_content_sniffing_for_unknown_extensions(tmp_path):
    a = tmp_path / "episodes.log"
    a.write_text(_line(seed=0) + "\n")
    b = tmp_path / "runs.txt"
    b.write_text("task,split,seed,success\npick,seen,1,1\n")
    assert len(load_episodes([a, b])) == 2
    c = tmp_path / "junk.bin"
    c.write_text("hello")
    with pytest.raises(UsageError, match="unknown episode file kind"):
        load_episodes([c])


records = st.lists(
    st.tuples(
        st.sampled_from(["pick", "place", "stack"]),
        st.sampled_from(["seen", "unseen"]),
        st.integers(-(2**40), 2**40),
        st.booleans(),
    ),
    max_size=40,
    unique_by=lambda r: r[:3],
)


@given(records)
@settings(max_examples=40, deadline=None)
def test_write_then_load_round_trips(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("h") / "e.jsonl"
    write_episodes(path, [Episode(t, s, seed, ok) for t, s, seed, ok in rows])
    if not rows:
        assert len(load_episodes([path])) == 0
        return
    table = load_episodes([path])
    got = list(
        zip(
            table.task.tolist(),
            table.split.tolist(),
            table.seed.tolist(),
            table.success.tolist(),
            strict=True,
        )
    )
    assert got == rows


def test_writer_accepts_numpy_scalars_from_a_rollout_loop(tmp_path):
    path = tmp_path / "e.jsonl"
    with EpisodeWriter(path) as w:
        w.write(
            {
                "task": "pick",
                "split": "seen",
                "seed": np.int64(3),
                "success": np.bool_(True),
                "steps": np.int32(12),
                "return": np.float32(0.5),
            }
        )
    (ep,) = read_episodes([path])
    assert (ep.seed, ep.success, ep.steps, ep.episode_return) == (3, True, 12, 0.5)
