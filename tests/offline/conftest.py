"""Helpers shared by the `vla-eval offline` tests: run the command, read its strict JSON,
check a one-line usage error. Expected numbers are never taken from vla_eval.offline."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from vla_eval.cli import main


@pytest.fixture
def offline_cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """``offline_cli(*argv)`` runs ``vla-eval offline ARGV`` -> (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["offline", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def strict_json() -> Callable[[str], dict]:
    """Parse JSON refusing NaN/Infinity constants (the results are strict JSON)."""

    def parse(text: str) -> dict:
        def refuse(name: str) -> None:
            raise AssertionError(f"non-strict JSON constant {name}")

        return json.loads(text, parse_constant=refuse)

    return parse


@pytest.fixture
def one_line_error() -> Callable[..., None]:
    """``one_line_error(code, out, err, *needles)``: exit 2, one ``vla-eval: error:`` line."""

    def check(code: int, out: str, err: str, *needles: str) -> None:
        assert code == 2
        assert out == ""
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vla-eval: error:"), err
        for needle in needles:
            assert needle in lines[0], lines[0]

    return check
