"""A run's run.json and findings.json are read strictly: a damaged file is one line naming it."""

from __future__ import annotations

import pytest

from vla_eval.errors import DataError, UsageError
from vla_eval.experiment.run import read_findings, read_object


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"findings\.json:1: malformed JSON"),
        ('{"findings": [', r"findings\.json:1: malformed JSON"),
        ('{"findings": [], "findings": [1]}', r"findings\.json: duplicate key 'findings'"),
        ("[1, 2]", r"findings\.json: expected a JSON object, got list"),
        ('{"findings": {"a": 1}}', r"findings\.json: 'findings' must be a list, got dict"),
        ('{"other": 1}', r"findings\.json: 'findings' must be a list, got NoneType"),
        ("[" * 5000 + "]" * 5000, r"findings\.json: nested deeper than"),
    ],
)
def test_damaged_findings_name_the_file(tmp_path, text, message):
    path = tmp_path / "findings.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_findings(path)
    assert "\n" not in str(err.value)


def test_run_json_errors_name_the_file(tmp_path):
    path = tmp_path / "run.json"
    with pytest.raises(UsageError, match=r"run\.json: cannot read \(no such file\)"):
        read_object(path)
    path.write_bytes(b'{"final_loss": "\xff"}')
    with pytest.raises(DataError, match=r"run\.json:1: not UTF-8"):
        read_object(path)
    path.write_text('{"final_loss": 0.5, "steps": 10}')
    assert read_object(path) == {"final_loss": 0.5, "steps": 10}
    path.write_text('{"findings": [{"symptom": "overfitting"}]}')
    assert read_findings(path) == [{"symptom": "overfitting"}]
