"""Cases that need a real process: stdout on a full device or a closed pipe, exit codes, limits.

Each runs ``python -m vla_eval.cli`` in a fresh interpreter with a time limit and an
address-space limit (see conftest), so a hang or a runaway allocation fails the test
instead of the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.fuzz.conftest import check_refused, episode, run_subprocess


def test_stdout_on_a_full_device(tmp_path):
    with open("/dev/full", "wb") as full:
        result = run_subprocess(["wilson", "-k", "1", "-n", "2"], stdout=full.fileno())
    check_refused(result, "standard output", "No space left")


def test_json_stdout_on_a_full_device(tmp_path):
    path = tmp_path / "e.jsonl"  # enough episodes for no "too few trials" warning
    path.write_text("".join(episode(seed=i, success=i % 3 == 0) for i in range(400)))
    with open("/dev/full", "wb") as full:
        result = run_subprocess(["report", str(path), "--json"], stdout=full.fileno())
    check_refused(result, "standard output")


def test_stdout_closed_early(tmp_path):
    """A reader that goes away (``| head -c 1``): one line, exit 2, no 'Exception ignored'."""
    counts = ",".join(f"task{i:05d}={i + 1}" for i in range(4000))  # ~200 KB of table
    proc = subprocess.Popen(
        [sys.executable, "-m", "vla_eval.cli", "sampling", "--counts", counts],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.read(1)
    proc.stdout.close()  # the pipe's reader is gone
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert code == 2 and err.count("\n") == 1 and "broken pipe" in err, (code, err)


def test_fifo_input_does_not_block(tmp_path):
    fifo = tmp_path / "e.jsonl"
    os.mkfifo(fifo)
    check_refused(run_subprocess(["report", str(fifo)], timeout=30), "not a regular file")


def test_protocol_base_dev_zero_is_not_read(tmp_path):
    protocol = tmp_path / "p.toml"
    protocol.write_text('base = "/dev/zero"\n[train]\n')
    result = run_subprocess(["run", str(protocol), "--dry-run"], timeout=30)
    check_refused(result, "/dev/zero")


def test_large_bootstrap_and_bins_refused_within_memory(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(episode(seed=1) + episode(seed=2, success=False))
    check_refused(run_subprocess(["report", str(path), "--bootstrap", str(10**12)]), "--bootstrap")
    result = run_subprocess(["offline", "--predictions", str(path), "--bins", str(10**9)])
    check_refused(result, "--bins")


def test_valid_input_still_exits_0(tmp_path):
    """The control: the same commands on good input succeed in the same harness."""
    path = tmp_path / "e.jsonl"
    path.write_text(episode(seed=1) + episode(seed=2, success=False))
    result = run_subprocess(["report", str(path), "--json", "--bootstrap", "100"])
    assert result.code == 0, result.err
    assert json.loads(result.out)["inputs"]["episodes"] == 2
