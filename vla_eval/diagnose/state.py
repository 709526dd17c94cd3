"""Detector state as plain Python types, for checkpoints and JSON.

A detector's running state (latches, running medians, best values so far, pending
spikes, per-task sums) is turned into dicts, lists, strings, ints, floats, bools and
None only (`encode`), so a checkpoint holding it loads with
``torch.load(weights_only=True)`` and a JSON file holds it unchanged; `decode` is the
inverse. A non-finite float is written as ``{"float": "nan"}`` so strict JSON keeps it.
Standard library and numpy only; must not import torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from vla_eval.diagnose.detectors.base import DetectorSet, Latch, LoopContext, Signals
from vla_eval.diagnose.detectors.gradient_explosion import _Spike
from vla_eval.diagnose.detectors.trend import LossTrend
from vla_eval.diagnose.findings import Finding
from vla_eval.diagnose.spikes import RunningMedian
from vla_eval.errors import DataError

# the dataclasses a detector may hold in its state, by the tag they are written under
_DATACLASSES: dict[str, type] = {
    "latch": Latch,
    "signals": Signals,
    "spike": _Spike,
    "context": LoopContext,
    "trend": LossTrend,
}


def encode(value: Any) -> Any:
    """``value`` as plain Python types (see the module docstring).

    >>> encode((3, float("inf")))
    {'tuple': [3, {'float': 'inf'}]}
    >>> decode(encode({"best": (3, float("inf"))}))
    {'best': (3, inf)}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, np.ndarray):
        return {"ndarray": encode(value.tolist()), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, deque):
        return {"deque": [encode(v) for v in value], "maxlen": value.maxlen}
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, Finding):
        return {"finding": encode(value.to_dict())}
    if isinstance(value, RunningMedian):
        return {"running_median": encode(vars(value))}
    for tag, cls in _DATACLASSES.items():
        if type(value) is cls:
            return {tag: {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(cls)}}
    raise TypeError(f"cannot store a {type(value).__name__} in a Diagnose state")


def decode(value: Any) -> Any:
    """The inverse of `encode`; a record it did not write raises `DataError`."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise DataError(f"malformed Diagnose state entry: {value!r:.80}")
    tag, body = next(iter(value.items()))
    if tag == "float":
        return float(body)
    if tag == "ndarray":
        return np.asarray(decode(body), dtype=value["dtype"])
    if tag == "tuple":
        return tuple(decode(v) for v in body)
    if tag == "deque":
        return deque((decode(v) for v in body), maxlen=value["maxlen"])
    if tag == "dict":
        return {_key(decode(k)): decode(v) for k, v in body}
    if tag == "finding":
        return Finding.from_dict(decode(body))
    if tag == "running_median":
        history = RunningMedian.__new__(RunningMedian)
        vars(history).update(decode(body))
        return history
    if tag in _DATACLASSES:
        cls = _DATACLASSES[tag]
        obj = cls.__new__(cls)
        for name, v in body.items():
            object.__setattr__(obj, name, decode(v))
        return obj
    raise DataError(f"unknown Diagnose state entry {tag!r}")


def _key(key: Any) -> Any:
    # a list is not hashable; a key was a tuple or a scalar
    return tuple(key) if isinstance(key, list) else key


def detector_state(detector: Any) -> dict[str, Any]:
    """Every field of a detector dataclass that is not a threshold (its running state)."""
    return {
        f.name: encode(getattr(detector, f.name))
        for f in dataclasses.fields(detector)
        if not f.init
    }


def load_detector_state(detector: Any, state: dict[str, Any]) -> None:
    """Restore what `detector_state` wrote; a missing or unknown field raises `DataError`."""
    names = {f.name for f in dataclasses.fields(detector) if not f.init}
    if set(state) != names:
        raise DataError(
            f"Diagnose state for {type(detector).__name__} has fields {sorted(state)}, "
            f"expected {sorted(names)}"
        )
    for name, value in state.items():
        setattr(detector, name, decode(value))


def set_state(detectors: DetectorSet, context: LoopContext) -> dict[str, Any]:
    """The loop context, every finding and every detector's running state."""
    return {
        "context": encode(context),
        "findings": encode(list(detectors.findings)),
        "detectors": [
            {"symptom": d.symptom, "state": detector_state(d)} for d in detectors.detectors
        ],
    }


def load_set_state(detectors: DetectorSet, saved: Mapping[str, Any]) -> LoopContext:
    """Restore what `set_state` wrote into ``detectors``; returns the loop context.

    Raises:
        DataError: the state was taken with other detectors.
    """
    mine = [d.symptom for d in detectors.detectors]
    theirs = [d["symptom"] for d in saved["detectors"]]
    if mine != theirs:
        raise DataError(f"Diagnose state has detectors {theirs}, this monitor runs {mine}")
    for detector, entry in zip(detectors.detectors, saved["detectors"], strict=True):
        load_detector_state(detector, entry["state"])
    detectors.findings = decode(saved["findings"])
    context = decode(saved["context"])
    detectors.set_context(context)
    return context
