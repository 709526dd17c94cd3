"""W&B in offline mode: the run file holds what was logged (read with W&B's own record format)."""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from wandb.proto import wandb_internal_pb2

from vla_eval.diagnose.findings import Finding
from vla_eval.errors import UsageError
from vla_eval.trackers import open_tracker

BLOCK = 32 * 1024  # the run file is a LevelDB-style log of 32 KiB blocks after a 7-byte header
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    """Every record of an offline run file, parsed with W&B's own protobuf classes."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, parts, out = 7, b"", []
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if room < 7 or (kind == 0 and length == 0):  # block trailer: padding
            pos += room
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (FULL, FIRST) else parts + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            out.append(record)
    return out


def finished(path: Path, timeout: float = 20.0) -> list[wandb_internal_pb2.Record]:
    """The run file's records once W&B's writer process has written the run's exit record
    (`finish` returns before the separate writer process is done)."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in found):
            return found
        assert time.monotonic() < deadline, "the run file never got its exit record"
        time.sleep(0.1)


def history(path: Path) -> dict[int, dict]:
    """step -> the values logged at it."""
    rows: dict[int, dict] = {}
    for record in finished(path):
        if record.WhichOneof("record_type") == "history":
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                     for i in record.history.item}  # fmt: skip
            rows.setdefault(items.pop("_step"), {}).update(items)
    return rows


def test_offline_run_holds_the_logged_values(tmp_path) -> None:
    losses = np.random.default_rng(2).uniform(0.1, 5.0, size=12)
    finding = Finding("task_imbalance", 9, "warning", "pour lags.", "raise the temperature.")
    tracker = open_tracker("wandb", tmp_path, run_name="w1", config={"steps": 12})
    for step, loss in enumerate(losses):
        if step == finding.step:
            tracker.log_finding(finding)
        tracker.log_scalars({"train/loss": loss}, step)
    frames = np.random.default_rng(3).integers(0, 255, size=(4, 16, 16, 3), dtype=np.uint8)
    tracker.log_video(frames, "rollout/pick", step=11, fps=4)
    tracker.close()
    assert tracker.failed is None

    [run_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    rows = history(run_file)
    assert [rows[s]["train/loss"] for s in range(12)] == pytest.approx(losses, abs=0, rel=0)
    assert rows[9]["diagnose/task_imbalance"] == 1  # warning = 1
    assert rows[9]["diagnose/task_imbalance/text"].startswith(
        "**warning** task_imbalance at step 9"
    )
    runs = [r.run for r in records(run_file) if r.WhichOneof("record_type") == "run"]
    assert runs[0].display_name == "w1"
    assert "diagnose:task_imbalance" in [t for r in runs for t in r.tags]
    configs = [r.config for r in runs] + [
        r.config for r in records(run_file) if r.WhichOneof("record_type") == "config"
    ]
    logged = {u.key: json.loads(u.value_json) for c in configs for u in c.update}
    assert logged["steps"] in (12, {"value": 12})  # W&B may wrap values as {"value": ...}
    assert rows[11]["rollout/pick/_type"] == "video-file"
    video = run_file.parent / "files" / rows[11]["rollout/pick/path"]
    assert video.suffix == ".mp4" and video.stat().st_size == rows[11]["rollout/pick/size"] > 0


def test_missing_wandb_names_the_extra(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(UsageError, match=r"vla-eval\[trackers\]"):
        open_tracker("wandb", tmp_path)


def test_a_resumed_run_continues_its_wandb_run(tmp_path) -> None:
    first = open_tracker("wandb", tmp_path, run_name="w")
    first.log_scalars({"train/loss": 1.0}, 0)
    first.close("failed")
    time.sleep(1.1)  # W&B names an offline run's folder by the second it started
    again = open_tracker("wandb", tmp_path, run_name="w", resume_step=1)
    again.log_scalars({"train/loss": 0.5}, 1)
    again.close()
    assert again.run_id == first.run_id
    # offline, each start is its own run folder of the one run id; `wandb sync` joins them
    files = sorted((tmp_path / "wandb").glob(f"offline-run-*-{first.run_id}/run-*.wandb"))
    assert len(files) == 2
    logged = [{step: row["train/loss"] for step, row in history(f).items()} for f in files]
    assert logged == [{0: 1.0}, {1: 0.5}]
    assert open_tracker("wandb", tmp_path / "other", run_name="w").run_id != first.run_id
