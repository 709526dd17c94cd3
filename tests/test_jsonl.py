"""The one JSON Lines reader: blank lines, errors naming file and line, the truncated last line."""

from __future__ import annotations

import warnings

import pytest

from vla_eval.errors import DataError, UsageError
from vla_eval.jsonl import TruncatedLineWarning, cut_truncated_last_line, iter_jsonl


def _read(path):
    return list(iter_jsonl(path, "m.jsonl"))


def test_lines_numbered_from_one_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": NaN}\r\n')
    rows = _read(path)
    assert [n for n, _ in rows] == [1, 4]
    assert rows[0][1] == {"a": 1} and rows[1][1]["a"] != rows[1][1]["a"]  # NaN token accepted


def test_only_a_cut_off_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    with pytest.warns(TruncatedLineWarning, match=r"^m\.jsonl:3: skipped a truncated last line"):
        assert [r["a"] for _, r in _read(path)] == [1, 2]
    # A complete last line without its newline is a record, not a fragment.
    path.write_text('{"a": 1}\n{"a": 2}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_read(path)) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"a": 1}\n{"a": \n{"a": 3}\n', r"m\.jsonl:2: malformed JSON \(.* at column \d+\)"),
        (b'{"a": 1}\n{"a": \n', r"m\.jsonl:2: malformed JSON"),  # has its newline: not cut off
        (b'{"a": 1}\n[1, 2]\n', r"m\.jsonl:2: expected a JSON object, got list"),
        (b'{"a": 1}\n{"a": "\xff"}\n', r"m\.jsonl:2: not UTF-8 text"),
    ],
)
def test_anything_else_malformed_is_an_error_naming_file_and_line(tmp_path, content, message):
    path = tmp_path / "m.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        _read(path)


def test_unreadable_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"m\.jsonl: cannot read"):
        _read(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="cannot read"):
        _read(tmp_path)


def test_cut_truncated_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"a": ')
    with pytest.warns(TruncatedLineWarning, match=r"m\.jsonl:2: removed a truncated final line"):
        cut_truncated_last_line(path)
    assert path.read_text() == '{"a": 1}\n'
    path.write_text('{"a": 1}\n{"a": 2}')
    cut_truncated_last_line(path)  # complete: only the newline is added
    assert path.read_text() == '{"a": 1}\n{"a": 2}\n'
    cut_truncated_last_line(tmp_path / "new.jsonl")  # missing: nothing to do
    assert not (tmp_path / "new.jsonl").exists()
