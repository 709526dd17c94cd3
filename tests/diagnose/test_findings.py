"""Finding: printing, JSON round trip, validation."""

from __future__ import annotations

import json

import pytest

from vla_eval.diagnose.findings import FAILURE_TABLE, SYMPTOMS, Finding
from vla_eval.errors import DataError
from vla_eval.formatting import number as fmt
from vla_eval.results import dumps


def test_the_six_symptoms_of_the_failure_table_and_under_training():
    assert set(SYMPTOMS) == {
        "under_training",
        "mode_collapse",
        "catastrophic_forgetting",
        "action_jitter",
        "overfitting",
        "gradient_explosion",
        "task_imbalance",
    }
    assert set(FAILURE_TABLE) == set(SYMPTOMS)


def test_printed_form_matches_the_design():
    f = Finding(
        "gradient_explosion",
        812,
        "warning",
        "grad norm 3.1e4 at step 812, 900x its median.",
        "clip at 1.0 and halve the LR.",
        {"grad_norm": 31000.0},
    )
    assert str(f) == (
        "step 812 gradient_explosion: grad norm 3.1e4 at step 812, 900x its median. "
        "Fix: clip at 1.0 and halve the LR."
    )
    assert str(Finding("action_jitter", None, "warning", "jitters.")) == (
        "rollouts action_jitter: jitters."
    )


def test_json_round_trip_is_strict():
    f = Finding("overfitting", 3, "critical", "m", "fix", {"x": float("nan"), "y": [1, 2.5]})
    text = dumps(f)
    data = json.loads(text)  # strict: a measured NaN became the string "nan"
    assert data["evidence"] == {"x": "nan", "y": [1, 2.5]}
    back = Finding.from_dict(data)
    assert (back.symptom, back.step, back.severity, back.message, back.fix) == (
        "overfitting",
        3,
        "critical",
        "m",
        "fix",
    )


def test_unknown_symptom_or_severity_is_refused():
    with pytest.raises(ValueError, match="unknown symptom"):
        Finding("nan_loss", 1, "warning", "m")
    with pytest.raises(ValueError, match="unknown severity"):
        Finding("overfitting", 1, "fatal", "m")
    with pytest.raises(DataError, match="malformed finding"):
        Finding.from_dict({"symptom": "overfitting"})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (31000.0, "3.1e4"),
        (900.4, "900"),
        (1.0, "1"),
        (0.5, "0.5"),
        (2e-4, "2.0e-4"),
        (-12.34, "-12"),
    ],
)
def test_numbers_in_messages(value, text):
    assert fmt(value) == text
