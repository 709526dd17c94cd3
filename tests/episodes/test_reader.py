"""Reading episode files: truncation, malformed lines, validation, duplicates, file kinds."""

from __future__ import annotations

import json
import warnings

import pytest

from vla_eval.episodes import (
    load_episodes,
)
from vla_eval.errors import DataError, UsageError
from vla_eval.jsonl import TruncatedLineWarning


def _line(**kw):
    rec = {"task": "pick", "split": "seen", "seed": 0, "success": True}
    rec.update(kw)
    return json.dumps(rec)


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
