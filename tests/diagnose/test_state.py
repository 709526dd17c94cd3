"""Diagnose.state_dict / load_state_dict: a resumed monitor judges as an uninterrupted one."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from vla_eval.diagnose import Diagnose  # noqa: E402
from vla_eval.diagnose.state import decode, encode  # noqa: E402
from vla_eval.errors import DataError  # noqa: E402
from vla_eval.results import to_jsonable  # noqa: E402

STEPS = 400


def _stream(seed: int):
    """Scripted signals of a run that shows every symptom: yields (kind, step, kwargs)."""
    rng = np.random.default_rng(seed)
    tasks = np.array(["pick"] * 30 + ["pour"] * 2)
    t = np.linspace(0, 1, 8)
    for step in range(STEPS):
        loss = 1.0 / (1 + step / 50) + 0.01 * rng.standard_normal()
        grad = 1.0 + 0.05 * rng.standard_normal()
        if step in (120, 125):  # two moderate spikes: the first waits for the second
            grad *= 40.0
        if step == 300:
            loss = float("nan")
        phase = rng.uniform(0, 6, size=(32, 1, 1))
        target = np.sin(phase + 3 * t[None, :, None]) * np.ones((1, 1, 2))
        pred = target + 0.01 * rng.standard_normal(target.shape)
        if step >= 200:  # zig-zag predictions around smooth targets
            pred = target + 0.8 * (-1.0) ** np.arange(8)[None, :, None]
        per_sample = np.where(tasks == "pour", 2.5, 0.5) + 0.05 * rng.standard_normal(32)
        yield (
            "step",
            step,
            {
                "loss": loss,
                "grad_norm": grad,
                "pred_actions": pred,
                "target_actions": target,
                "task": tasks,
                "per_sample_loss": per_sample,
                "lr": 1e-3,
            },
        )
        if step % 50 == 49:
            heldout = 1.0 - step / 1000 if step < 250 else 0.6 + (step - 250) / 200
            web = 1.0 + max(0, step - 150) / 100
            per_task = {"pick": 0.5, "pour": 0.5 if step < 200 else 2.0}
            yield (
                "evaluate",
                step,
                {
                    "heldout_loss": heldout,
                    "web_loss": web,
                    "heldout_loss_per_task": per_task,
                },
            )
        if step == 150:
            yield "new_stage", step, {"name": "co-train", "lr": 2e-5, "web_ratio": 0.5}


def monitor() -> Diagnose:
    return Diagnose(check_every=10, stage="robot", lr=1e-3, clip=1.0, temperature=2.0)


def _records(findings) -> list:
    """Findings as JSON records (NaN written as "nan", so two NaNs compare equal)."""
    return [to_jsonable(f.to_dict()) for f in findings]


def _feed(diag: Diagnose, events) -> list:
    out = []
    for kind, step, kwargs in events:
        if kind == "new_stage":
            diag.new_stage(**kwargs)
        else:
            out += getattr(diag, kind)(step, **kwargs)
    return out + diag.flush()


def _through_checkpoint(state: dict) -> dict:
    """The state after JSON (strict) and a weights_only torch checkpoint."""
    state = json.loads(json.dumps(state, allow_nan=False))
    buffer = io.BytesIO()
    torch.save({"diagnose": state}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)["diagnose"]


@pytest.mark.parametrize("cut", [0, 37, 122, 205, 260, 301, 399])
def test_a_restored_monitor_raises_exactly_the_uninterrupted_findings(cut):
    events = list(_stream(seed=3))
    whole = monitor()
    expected = _records(_feed(whole, events))
    # the stream shows every symptom, so the comparison has something to compare
    assert {f["symptom"] for f in expected} >= {
        "gradient_explosion",
        "task_imbalance",
        "overfitting",
        "catastrophic_forgetting",
    }
    assert any(f["severity"] == "critical" for f in expected)
    assert {"action_jitter", "under_training"} & {f["symptom"] for f in expected}
    head = [e for e in events if e[1] < cut]
    tail = [e for e in events if e[1] >= cut]
    first = monitor()
    raised = _feed(first, head)
    resumed = monitor()
    resumed.load_state_dict(_through_checkpoint(first.state_dict()))
    assert _records(resumed.findings) == _records(raised)
    raised += _feed(resumed, tail)
    assert _records(raised) == expected
    assert _records(resumed.findings) == expected


def test_the_state_holds_plain_python_types_only():
    diag = monitor()
    _feed(diag, [e for e in _stream(seed=4) if e[1] < 310])

    def walk(value):
        if isinstance(value, dict):
            assert all(isinstance(k, str) for k in value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert value is None or type(value) in (bool, int, float, str), type(value)

    walk(diag.state_dict())


def test_a_state_from_other_detectors_or_no_state_is_refused():
    diag = monitor()
    saved = diag.state_dict()
    with pytest.raises(DataError, match="not a Diagnose state"):
        Diagnose().load_state_dict({"schema": "something else"})
    saved["detectors"] = saved["detectors"][:-1]
    with pytest.raises(DataError, match="detectors"):
        Diagnose().load_state_dict(saved)


_leaves = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.floats()
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4) | st.integers(), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_values)
def test_encode_survives_strict_json_and_decodes_to_the_same_value(value):
    text = json.dumps(encode(value), allow_nan=False)
    back = decode(json.loads(text))
    # repr compares NaN with NaN, and tells a tuple from a list and 1 from 1.0
    assert repr(back) == repr(value)
