"""`train` killed at each write (checkpoints, the metrics rewrite, run.json), then
resumed: the run finishes with exactly the artefacts of an uninterrupted run — every
metrics line once and bit-identical, the final weights, the Diagnose findings.

The run is a 12-step smoke recipe with a learning rate so high that the gradient
explosion detector fires at step 4, two steps after the first checkpoint: a resume
from that checkpoint raises the same finding only if the detectors' history came back
with it. Kills at a given write use the test hook of `vla_eval.results.atomic_write`
(``VLA_EVAL_TEST_KILL_AT=GLOB:N:PHASE``, a SIGKILL the process sends itself); then
real SIGKILLs from outside at seeded random moments; a finished run resumed (nothing
changes); and two writers on one run folder (the second is refused, the first's
result stays intact).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vla_eval.cli import main
from vla_eval.errors import UsageError
from vla_eval.protocol import load_protocol
from vla_eval.trainer.train import train

pytestmark = pytest.mark.slow

PROTOCOL = """
name = "crash"
[train]
seed = 0
steps = 12
batch_size = 16
eval_every = 6
checkpoint_every = 2
threads = 1
[train.data]
counts = { pick = 8, place = 8, stack = 4, pour = 4 }
heldout_per_task = 2
web_examples = 64
[train.recipe]
lrs = [1.0, 1.0, 1.0]
web_ratio = 0.25
[train.model]
width = 32
depth = 1
heads = 2
vision_channels = 16
"""


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protocol") / "crash.toml"
    path.write_text(PROTOCOL)
    return path


@pytest.fixture(scope="module")
def reference(protocol: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(load_protocol(protocol).train, out_dir=out, progress=False)
    return out


def _cli(protocol: Path, out: Path, *flags: str, kill_at: str | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "VLA_EVAL_TEST_KILL_AT"}
    if kill_at:
        env["VLA_EVAL_TEST_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "vla_eval.cli", "train", str(protocol), "--out", str(out)]
    return subprocess.Popen([*cmd, "--no-progress", *flags], env=env, stderr=subprocess.PIPE)


def _killed_at(protocol: Path, out: Path, kill_at: str, *flags: str) -> None:
    proc = _cli(protocol, out, *flags, kill_at=kill_at)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, kill_at


def _same_run(out: Path, reference: Path) -> None:
    """Every artefact of `out` equals the uninterrupted run's."""
    assert (out / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    ours = torch.load(out / "checkpoints/step_000012.pt", weights_only=True)
    theirs = torch.load(reference / "checkpoints/step_000012.pt", weights_only=True)
    for key, value in theirs["model"].items():
        assert torch.equal(ours["model"][key], value), key
    assert ours["diagnose"] == theirs["diagnose"]
    findings = json.loads((out / "findings.json").read_text())
    assert findings == json.loads((reference / "findings.json").read_text())
    run, ref = (json.loads((d / "run.json").read_text()) for d in (out, reference))
    assert {k: v for k, v in run.items() if k != "seconds"} == {
        k: v for k, v in ref.items() if k != "seconds"
    }
    names = {p.name for p in (out / "checkpoints").iterdir()}
    assert names == {p.name for p in (reference / "checkpoints").iterdir()}  # no temporaries


def test_reference_run_has_a_finding_after_the_first_checkpoint(reference: Path) -> None:
    findings = json.loads((reference / "findings.json").read_text())["findings"]
    # a spike two steps after the first checkpoint (step 4 on the default, AVX2 and
    # AVX-512 kernels alike), so resumes from that checkpoint need the detectors' history
    assert [f["symptom"] for f in findings] == ["gradient_explosion"]
    assert findings[0]["step"] > 2


# Each kill point: (hook spec, then resume with --resume or start again without it).
KILL_POINTS = [
    ("step_*.pt:1:during", "--resume"),  # the very first checkpoint, half-written
    ("step_*.pt:1:during", None),  # ... and a plain run instead of --resume
    ("step_*.pt:1:after", "--resume"),  # right after it: the finding at step 4 is still ahead
    ("step_*.pt:4:during", "--resume"),
    ("step_000012.pt:1:after", "--resume"),  # after the final checkpoint, before run.json
    ("run.json:1:during", "--resume"),
]


@pytest.mark.parametrize("kill_at, again", KILL_POINTS)
def test_kill_at_a_write_then_resume_equals_uninterrupted(
    protocol: Path, reference: Path, tmp_path: Path, kill_at: str, again: str | None
) -> None:
    out = tmp_path / "run"
    _killed_at(protocol, out, kill_at)
    train(load_protocol(protocol).train, out_dir=out, resume=again is not None, progress=False)
    _same_run(out, reference)


def test_kill_during_the_metrics_rewrite_of_a_resume(
    protocol: Path, reference: Path, tmp_path: Path
) -> None:
    """The resume replaces metrics.jsonl atomically: killed while doing it, nothing is lost."""
    out = tmp_path / "run"
    _killed_at(protocol, out, "step_*.pt:3:after")  # a few steps logged and checkpointed
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) >= 3
    _killed_at(protocol, out, "metrics.jsonl:1:during", "--resume")
    assert (out / "metrics.jsonl").read_text().splitlines() == lines  # the old file, whole
    train(load_protocol(protocol).train, out_dir=out, resume=True, progress=False)
    _same_run(out, reference)


# --- random kills from outside, a finished run, a second writer ------------------------


def test_random_sigkills_then_resume_equals_uninterrupted(
    protocol: Path, reference: Path, tmp_path: Path
) -> None:
    rng = random.Random(18)
    out = tmp_path / "run"
    metrics = out / "metrics.jsonl"
    kills = 0
    for _ in range(3):
        started = metrics.exists()
        proc = _cli(protocol, out, *(["--resume"] if started else []))
        want = rng.randint(1, 11)  # metrics lines (steps) written before the kill
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if metrics.exists() and metrics.read_bytes().count(b"\n") >= want:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # anywhere in a step, a checkpoint or a log write
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        kills += proc.returncode == -signal.SIGKILL
    assert kills >= 2
    train(load_protocol(protocol).train, out_dir=out, resume=True, progress=False)
    _same_run(out, reference)


def test_resume_of_a_finished_run_changes_nothing(
    protocol: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)

    def files() -> dict[Path, tuple[bytes, int]]:  # everything but the lock file
        found = [p for p in out.rglob("*") if p.is_file() and p.name != ".vla-eval.lock"]
        return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in found}

    before = files()
    assert main(["train", str(protocol), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert "already holds the finished run" in capsys.readouterr().out
    assert files() == before and len(before) >= 9  # run.json, findings.json, metrics, 6+ ckpts


def test_a_second_train_on_the_same_folder_is_refused(
    protocol: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    first = _cli(protocol, out)
    lock = out / ".vla-eval.lock"
    deadline = time.time() + 30
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.02)
    assert lock.read_text().strip() == str(first.pid)
    with pytest.raises(UsageError, match=rf"run directory .* \(pid {first.pid}\)"):
        train(load_protocol(protocol).train, out_dir=out, resume=True, progress=False)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    _same_run(out, reference)  # the first run's result is intact
