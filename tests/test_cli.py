"""The command line: `vla-eval wilson`, error handling, and what the light path imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from statsmodels.stats.proportion import proportion_confint

from vla_eval import __version__
from vla_eval.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_wilson_human_readable(capsys) -> None:
    code, out, err = run(capsys, "wilson", "--successes", "17", "--trials", "20")
    assert code == 0 and err == ""
    assert out.strip() == "17/20 = 85.0% (95% Wilson CI 64.0%-94.8%)"


def test_wilson_json_is_strict_and_matches_statsmodels(capsys) -> None:
    code, out, _ = run(
        capsys,
        "wilson",
        "-k",
        "3",
        "-n",
        "12",
        "--confidence",
        "0.9",
        "--method",
        "jeffreys",
        "--json",
    )
    assert code == 0
    body = json.loads(out)  # exactly one JSON object on stdout
    assert body["schema"] == "vla-eval/wilson/1"
    assert body["provenance"]["versions"]["vla-eval"] == __version__
    (ci,) = body["intervals"]
    lo, hi = proportion_confint(3, 12, alpha=0.1, method="jeffreys")
    assert ci["lower"] == pytest.approx(lo, abs=1e-9) and ci["upper"] == pytest.approx(hi, abs=1e-9)
    assert ci["method"] == "jeffreys" and ci["confidence"] == 0.9


def test_wilson_all_methods(capsys) -> None:
    code, out, _ = run(capsys, "wilson", "-k", "17", "-n", "20", "--all", "--json")
    assert code == 0
    methods = [ci["method"] for ci in json.loads(out)["intervals"]]
    assert methods == ["wilson", "wilson-cc", "clopper-pearson", "jeffreys", "agresti-coull"]
    code, out, _ = run(capsys, "wilson", "-k", "17", "-n", "20", "--all")
    assert "clopper-pearson" in out and "62.1%" in out  # exact lower bound 0.6211


def test_confidence_as_percent(capsys) -> None:
    code, out, _ = run(capsys, "wilson", "-k", "17", "-n", "20", "-c", "90%")
    assert code == 0 and "90% Wilson CI" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["wilson", "-k", "21", "-n", "20"], "cannot exceed trials"),
        (["wilson", "-k", "-1", "-n", "20"], "non-negative whole number"),
        (["wilson", "-k", "2.5", "-n", "20"], "non-negative whole number"),
        (["wilson", "-k", "1", "-n", "0"], "at least 1"),
        (["wilson", "-k", "1", "-n", "2", "-c", "1.5"], "between 0 and 1"),
        (["wilson", "-k", "1", "-n", "2", "-c", "0"], "between 0 and 1"),
        (["wilson", "-k", "1", "-n", "2", "-c", "abc"], "must be a number"),
        (["wilson", "-k", "1", "-n", "2", "-m", "wald"], "unknown interval method"),
        (["wilson", "-k", "1"], "required"),
        (["no-such-command"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, argv, fragment) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and fragment in err
    assert err.startswith("vla-eval: error: ")


def test_console_script_no_traceback_and_light_imports() -> None:
    """The installed command: exit 2 without a traceback; the Wilson path imports no
    torch, scipy, statsmodels or numpy."""
    bad = subprocess.run(
        [sys.executable, "-m", "vla_eval.cli", "wilson", "-k", "5", "-n", "3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    probe = (
        "import sys; from vla_eval.cli import main; main(['wilson','-k','17','-n','20']); "
        "heavy = [m for m in ('torch','scipy','statsmodels','numpy') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "HEAVY []" in ok.stdout


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"vla-eval {__version__}"


def test_the_error_boundary_keeps_bugs_loud(monkeypatch) -> None:
    """User errors become one line; anything else (a bug) keeps its traceback."""
    import vla_eval.cli.wilson as wilson_cmd
    from vla_eval.cli import user_error_message

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(wilson_cmd, "run", broken)
    with pytest.raises(KeyError):
        main(["wilson", "-k", "1", "-n", "2"])
    assert user_error_message(KeyError("x")) is None
    assert user_error_message(FileNotFoundError(2, "No such file", "a.jsonl")) == (
        "a.jsonl: No such file"
    )
    assert "nested too deeply" in user_error_message(RecursionError())
    assert "not UTF-8" in user_error_message(_decode_error())


def _decode_error() -> UnicodeDecodeError:
    try:
        b"\xff".decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    raise AssertionError("unreachable")
