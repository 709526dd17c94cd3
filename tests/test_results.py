"""Strict JSON results: undefined values are null, non-finite ones strings; atomic writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from vla_eval.results import dumps, provenance, to_jsonable, write_json


def test_undefined_is_null_and_non_finite_values_are_strings() -> None:
    obj = {
        "none": None,
        "nan": float("nan"),
        "inf": math.inf,
        "-inf": -math.inf,
        "arr": np.array([1.0, np.nan, -np.inf]),
        "f32": np.float32(np.inf),
        "i": np.int64(3),
    }
    text = dumps(obj)
    assert json.loads(text) == {
        "none": None,
        "nan": "nan",
        "inf": "inf",
        "-inf": "-inf",
        "arr": [1.0, "nan", "-inf"],
        "f32": "inf",
        "i": 3,
    }
    assert "NaN" not in text and "Infinity" not in text


def test_unknown_type_is_an_error_not_a_silent_string() -> None:
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_write_json_replaces_atomically(tmp_path) -> None:
    target = tmp_path / "sub" / "report.json"
    write_json(target, {"schema": "x/1", "v": 1})
    write_json(target, {"schema": "x/1", "v": 2})
    assert json.loads(target.read_text()) == {"schema": "x/1", "v": 2}
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temp files left


def test_provenance_records_seeds_and_versions() -> None:
    p = provenance(["vla-eval", "report"], seeds={"bootstrap": 0}, packages=("numpy",))
    assert p["command"] == ["vla-eval", "report"]
    assert p["seeds"] == {"bootstrap": 0}
    assert p["versions"]["numpy"] == np.__version__
