"""The one JSON Lines reader: blank lines, errors naming file and line, the truncated last line."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval import jsonl
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


# --- streaming and strictness ----------------------------------------------------------------

_line = st.one_of(
    st.just(""),
    st.just("   "),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=6), max_size=3).map(
        lambda d: json.dumps(d, ensure_ascii=False)  # multi-byte characters across blocks
    ),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_line, max_size=12), st.integers(min_value=1, max_value=40), st.booleans())
def test_streamed_blocks_read_like_whole_lines(lines, block, final_newline):
    """Whatever the block size, the records and line numbers are those of splitting the text
    at newlines and parsing each non-blank line (the independent reading)."""
    text = "\n".join(lines) + ("\n" if final_newline else "")
    expected = [(i + 1, json.loads(t)) for i, t in enumerate(text.split("\n")) if t.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(text.encode("utf-8"))
        original = jsonl._BLOCK
        jsonl._BLOCK = block
        try:
            assert list(iter_jsonl(path)) == expected
        finally:
            jsonl._BLOCK = original


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"success": true, "success": false}', "duplicate key 'success'"),
        ('{"a": {"b": 1, "b": 2}}', "duplicate key 'b'"),
        ('{"a": ' + "[" * 101 + "]" * 101 + "}", "nested deeper than 100"),
        ('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested deeper than 100"),
        ('{"a": ' + "7" * 5000 + "}", "too long"),
    ],
)
def test_strict_json_rules_name_the_line(tmp_path, line, message):
    path = tmp_path / "m.jsonl"
    path.write_text('{"ok": 1}\n' + line + "\n")
    with pytest.raises(DataError, match=r"m\.jsonl:2: .*" + message):
        _read(path)


def test_strictness_errors_are_not_mistaken_for_a_truncated_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"ok": 1}\n{"a": 1, "a": 2}')  # last line, no newline, but complete
    with pytest.raises(DataError, match="duplicate key"):
        _read(path)


def test_depth_at_the_limit_is_accepted(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": ' + "[" * 99 + "]" * 99 + "}\n")  # 100 levels with the object
    assert len(_read(path)) == 1


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "m.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        _read(fifo)
