"""Helpers of the fuzz suite: run `vla-eval` on hostile input and check the one promise.

The promise (DESIGN.md, issue "every bad input a clear error"): exit status 2, exactly one
line on stderr starting ``vla-eval: error:``, nothing on stdout, no traceback, in bounded
time and memory. `check_refused` asserts it; `run_inprocess` runs the command in this
interpreter (fast), `run_subprocess` in a fresh one under a time limit and an address-space
limit (``RLIMIT_AS``), for cases that need real exit codes, devices, pipes or limits.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from vla_eval.cli import main

MEMORY_LIMIT = 3 * 1024**3  # bytes of address space a refused input may use
TIME_LIMIT = 60  # seconds


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def check_refused(result: Outcome, *needles: str) -> None:
    """Exit 2, one ``vla-eval: error:`` line, empty stdout, no traceback; needles in the line."""
    assert "Traceback" not in result.err, result.err
    assert result.code == 2, (result.code, result.err[-2000:])
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("vla-eval: error: "), lines[0]
    assert result.out == "", result.out[:500]
    for needle in needles:
        assert needle.lower() in lines[0].lower(), (needle, lines[0])


def _limits() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_subprocess(
    argv: list[str],
    *,
    cwd: Path | None = None,
    stdout: int | None = subprocess.PIPE,
    timeout: float = TIME_LIMIT,
) -> Outcome:
    """`python -m vla_eval.cli ARGV` in a fresh interpreter, limited in time and memory."""
    proc = subprocess.run(
        [sys.executable, "-m", "vla_eval.cli", *argv],
        cwd=cwd,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=timeout,
        preexec_fn=_limits,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out = proc.stdout.decode("utf-8", "replace") if proc.stdout is not None else ""
    return Outcome(proc.returncode, out, proc.stderr.decode("utf-8", "replace"))


@pytest.fixture
def run_inprocess(capsys) -> Callable[..., Outcome]:
    """``run_inprocess(*argv)``: `vla_eval.cli.main` in this interpreter -> `Outcome`."""

    def run(*argv: str) -> Outcome:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def episode(**fields: object) -> str:
    """One episode line (valid unless `fields` override something)."""
    record = {"schema": "vla-eval/episode/1", "task": "pick", "split": "seen", "seed": 0}
    record["success"] = True
    record.update(fields)
    return json.dumps(record) + "\n"
