"""Generated hostile input: whatever the bytes, numbers or structures, the answer is either a
result (exit 0) or one clear line (exit 2) -- never a traceback, never another status.

Hypothesis draws episode files (random bytes, and JSON records with random values at the
known keys), option values for the number-taking commands, protocol TOML text and
predictions archives; every example runs the real command line in-process.
``FUZZ_EXAMPLES=600`` draws more examples per test for a longer hunt (default 60).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vla_eval.cli import main

SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _check(code: int, out: str, err: str) -> None:
    assert "Traceback" not in err
    assert code in (0, 2), (code, err)
    errors = [line for line in err.splitlines() if line.startswith("vla-eval: error:")]
    others = [line for line in err.splitlines() if not line.startswith("vla-eval: warning:")]
    if code == 2:
        assert len(errors) == 1 and others == errors and out == "", err
    else:
        assert errors == [] and others == [], err


def _file(data: bytes, suffix: str) -> str:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return name


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
record = st.fixed_dictionaries(
    {},
    optional={
        "task": json_values | st.sampled_from(["pick", "place", "\ud800", ""]),
        "split": json_values | st.sampled_from(["seen", "unseen"]),
        "seed": json_values | st.integers(min_value=-(2**70), max_value=2**70),
        "success": json_values | st.booleans(),
        "policy": json_values,
        "steps": json_values,
        "return": json_values,
        "schema": st.sampled_from(["vla-eval/episode/1", "vla-eval/episode/2"]),
    },
)


@SETTINGS
@given(st.lists(record, max_size=6), st.sampled_from([".jsonl", ".json", ".csv", ""]))
def test_report_on_generated_records(capsys, records, suffix):
    text = "".join(json.dumps(r) + "\n" for r in records)
    path = _file(text.encode("utf-8", "surrogatepass"), suffix)
    try:
        _check(*_run(["report", path, "--bootstrap", "50"], capsys))
    finally:
        os.unlink(path)


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".json", ".csv"]))
def test_report_on_random_bytes(capsys, data, suffix):
    path = _file(data, suffix)
    try:
        _check(*_run(["report", path, "--bootstrap", "50"], capsys))
    finally:
        os.unlink(path)


numbers = st.one_of(
    st.text(max_size=12),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["²", "1e-320", "5e-324", "0.9999999999999999", "1" + "0" * 400, "-0", "95%"]),
)


@SETTINGS
@given(numbers, numbers, numbers)
def test_wilson_on_generated_numbers(capsys, k, n, c):
    _check(*_run(["wilson", f"-k={k}", f"-n={n}", f"-c={c}"], capsys))


@SETTINGS
@given(numbers, numbers, numbers)
def test_plan_on_generated_numbers(capsys, half_width, rate, confidence):
    # The --half-width plan is closed-form; the p0 -> p1 plans search exact power, whose
    # time grows with 1/alpha (timed separately, not fuzzed here).
    argv = ["plan", f"--half-width={half_width}", f"--p={rate}", f"-c={confidence}"]
    _check(*_run(argv, capsys))


@SETTINGS
@given(st.lists(st.tuples(st.text(max_size=5), numbers), min_size=1, max_size=4), numbers)
def test_sampling_on_generated_numbers(capsys, counts, temperature):
    text = ",".join(f"{name}={value}" for name, value in counts)
    _check(*_run(["sampling", f"--counts={text}", f"-T={temperature}"], capsys))


toml_text = st.one_of(
    st.text(max_size=120),
    st.builds(
        lambda key, value: f"[train]\nsteps = 1\n[{key}]\nx = {value}\n",
        st.sampled_from(["evaluate", "train.recipe", "train.model", "experiment", "x"]),
        st.sampled_from(["1", "-1", "nan", "inf", "1e39", '"bogus"', "[1, 2]", "{}", "true"]),
    ),
    st.builds(
        lambda key, value: f"[train.recipe]\n{key} = {value}\n",
        st.sampled_from(["lr", "lrs", "weight_decay", "shares", "grad_clip", "kind"]),
        st.sampled_from(["1e39", "-1", "nan", "inf", "[1e39, 1, 1]", "0", '"one_stage"']),
    ),
)


@SETTINGS
@given(toml_text)
def test_run_dry_run_on_generated_protocols(capsys, text):
    path = _file(text.encode("utf-8", "surrogatepass"), ".toml")
    try:
        _check(*_run(["run", path, "--dry-run"], capsys))
    finally:
        os.unlink(path)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


arrays = st.sampled_from(
    [
        np.zeros((4, 7)),
        np.full((4, 7), np.nan),
        np.zeros((4, 2, 7)),
        np.zeros(3),
        np.array(["a", "b", "c", "d"]),
        np.array([b"\xff"] * 4),
        np.zeros((0, 7)),
        np.ones((4, 7), dtype=np.int64) * 300,
    ]
)


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["pred_actions", "pred_tokens", "target_actions", "task", "split", "mask"]),
        arrays,
        max_size=4,
    ),
    st.integers(min_value=0, max_value=2000),
)
def test_predictions_on_generated_archives(capsys, members, cut):
    data = _npz_bytes(members)
    if cut:
        data = data[: max(1, len(data) - cut)]  # sometimes a truncated archive
    path = _file(data, ".npz")
    try:
        _check(*_run(["offline", "--predictions", path], capsys))
    finally:
        Path(path).unlink()
