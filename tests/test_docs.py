"""The guide cannot go stale: every checked example in docs/ is re-run and compared.

A checked example is a fenced block preceded by an HTML comment ``<!-- check -->``
(invisible on the rendered page):

- a ``python`` block is executed, in the order of the page, in a fresh folder shared by
  the page's examples (so it can write the files the commands after it read);
- a console block pairs commands (lines starting ``$ vla-eval``) with what they print:
  the command runs in-process and its standard error followed by its standard output
  (the order a terminal shows for these commands, which warn before they report) must
  equal the lines below it. A line ``...`` stands for any lines (an excerpt); a
  command shown without output must run and exit 0; one whose output shows
  ``vla-eval: error:`` must exit 2.

Options after ``check:``: ``smoke`` puts the session's smoke run at ``runs/smoke``
(``vla-eval train protocols/smoke.toml --out runs/smoke``); ``approx`` compares numbers
to the last printed digit plus 0.5% (models trained on other CPU kernels round
differently). Timestamps, durations and the folder's path are normalised.

Examples too slow to re-run (the quickstart takes minutes) are generated instead: the
lines between ``<!-- generated: quickstart FILE -->`` and ``<!-- end generated -->``
must be lines that `format_markdown` prints for the committed result FILE (the real
output of the command the page shows).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vla_eval.cli import main

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
CHECK = re.compile(r"^<!--\s*check(?::\s*(?P<options>[^>]*?))?\s*-->\s*$")
GENERATED = re.compile(r"^<!--\s*generated:\s*quickstart\s+(?P<file>\S+)\s*-->\s*$")
OPTIONS = {"smoke", "approx"}


@dataclass(frozen=True)
class Example:
    """One checked block of a page: where it is, its options, its language and lines."""

    doc: str
    line: int
    options: frozenset[str]
    lang: str
    lines: list[str] = field(hash=False)


def examples(path: Path) -> list[Example]:
    """The checked examples of a page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for i, line in enumerate(lines):
        m = CHECK.match(line.strip())
        if not m:
            continue
        options = frozenset((m.group("options") or "").split())
        assert options <= OPTIONS, f"{path.name}:{i + 1}: unknown options {options - OPTIONS}"
        fence = lines[i + 1].strip() if i + 1 < len(lines) else ""
        assert fence.startswith("```"), f"{path.name}:{i + 1}: a check must precede a fence"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        found.append(Example(path.name, i + 1, options, fence[3:].strip(), lines[i + 2 : end]))
    return found


def commands(block: list[str]) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) pairs of a console block."""
    pairs: list[tuple[str, list[str]]] = []
    for line in block:
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        else:
            assert pairs, f"output before any command: {line!r}"
            pairs[-1][1].append(line)
    return pairs


def normalise(text: str, folder: Path) -> list[str]:
    """Lines without trailing spaces, the run's folder, timestamps or durations."""
    text = text.replace(str(folder) + os.sep, "").replace(str(folder), ".")
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?", "<time>", text)
    text = re.sub(r"\b\d+(\.\d+)? ?(s|ms|seconds)\b", "<n> s", text)
    return [line.rstrip() for line in text.rstrip("\n").splitlines()]


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def same_line(got: str, want: str, approx: bool) -> bool:
    """Equal lines; with `approx`, numbers may differ by a unit of their last digit + 0.5%."""
    if got == want or not approx:
        return got == want
    if _NUMBER.split(got) != _NUMBER.split(want):
        return False
    for a, b in zip(_NUMBER.findall(got), _NUMBER.findall(want), strict=False):
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
        unit = 10.0 ** -len(b.partition(".")[2])
        if abs(x - y) > unit + 0.005 * abs(y):
            return False
    return len(_NUMBER.findall(got)) == len(_NUMBER.findall(want))


def matches(got: list[str], want: list[str], approx: bool = False) -> bool:
    """Whether `got` is `want`, where a ``...`` line in `want` stands for any lines."""
    chunks: list[list[str]] = [[]]
    for line in want:
        if line.strip() == "...":
            chunks.append([])
        else:
            chunks[-1].append(line)
    pos = 0
    for k, chunk in enumerate(chunks):
        if not chunk:
            continue
        first, last = k == 0, k == len(chunks) - 1
        starts = [pos] if first else range(pos, len(got) - len(chunk) + 1)
        at = next(
            (
                s
                for s in starts
                if all(
                    same_line(g, w, approx)
                    for g, w in zip(got[s : s + len(chunk)], chunk, strict=False)
                )
                and len(got[s : s + len(chunk)]) == len(chunk)
                and (not last or s + len(chunk) == len(got))
            ),
            None,
        )
        if at is None:
            return False
        pos = at + len(chunk)
    return len(chunks) > 1 or pos == len(got)


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if examples(p))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_checked_examples_print_what_the_page_shows(page, tmp_path, monkeypatch, capsys, request):
    found = examples(page)
    if any("smoke" in e.options for e in found):
        (tmp_path / "runs").mkdir()
        (tmp_path / "runs" / "smoke").symlink_to(request.getfixturevalue("smoke_run"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    for ex in found:
        where = f"{ex.doc}:{ex.line}"
        if ex.lang == "python":
            exec(compile("\n".join(ex.lines), where, "exec"), {"__name__": "__docs__"})
            continue
        for command, want in commands(ex.lines):
            argv = shlex.split(command)
            assert argv[0] == "vla-eval", f"{where}: only vla-eval commands are checked"
            capsys.readouterr()
            code = main(argv[1:])
            out = capsys.readouterr()
            failing = any(line.startswith("vla-eval: error:") for line in want)
            assert code == (2 if failing else 0), f"{where}: `{command}` exited {code}"
            if not want:  # the page shows no output: only that the command runs
                continue
            got = normalise(out.err + out.out, tmp_path)
            expected = normalise("\n".join(want), tmp_path)
            assert matches(got, expected, "approx" in ex.options), (
                f"{where}: `{command}` now prints:\n" + "\n".join(got)
            )


def generated_regions(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, result file, lines) of each generated region of a page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    regions = []
    for i, line in enumerate(lines):
        m = GENERATED.match(line.strip())
        if m:
            end = next(j for j in range(i + 1, len(lines)) if "<!-- end generated -->" in lines[j])
            regions.append((i + 1, m.group("file"), lines[i + 1 : end]))
    return regions


def test_quickstart_excerpts_are_what_the_formatter_prints_for_the_committed_run():
    from vla_eval.quickstart import format_markdown

    page = DOCS / "getting-started.md"
    regions = generated_regions(page)
    assert regions, "getting-started.md shows the quickstart's real output"
    for line, file, lines in regions:
        result = json.loads((ROOT / file).read_text(encoding="utf-8"))
        assert result["schema"] == "vla-eval/quickstart/1"
        printed = format_markdown(result).splitlines()
        body = [x for x in lines if x.strip()]
        assert body, f"{page.name}:{line}: empty region"
        text = [x for x in printed if x.strip()]
        starts = [i for i, x in enumerate(text) if x == body[0]]
        assert any(text[i : i + len(body)] == body for i in starts), (
            f"{page.name}:{line}: not what format_markdown prints for {file}"
        )


def test_the_matcher_reads_excerpts_and_tolerance_as_documented():
    assert matches(["a", "b", "c"], ["a", "...", "c"])
    assert matches(["a", "b", "c"], ["a", "..."])
    assert not matches(["a", "b", "c"], ["a", "b"])  # the end must match without ...
    assert not matches(["a", "x", "c"], ["...", "b", "..."])
    assert same_line("loss 4.836, 65.0%", "loss 4.835, 65.0%", approx=True)
    assert not same_line("loss 4.874, 71.0%", "loss 4.835, 65.0%", approx=True)
    assert not same_line("loss 4.836", "loss 4.835", approx=False)
    assert normalise("took 211 s at 2026-01-02T03:04:05+00:00\n", Path("/x")) == [
        "took <n> s at <time>"
    ]
