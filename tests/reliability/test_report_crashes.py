"""`report --out` killed at each of its writes, then run again; and a second writer on a
report folder. A kill never leaves a half-written report.json or a 0-byte forest.png
(before this, 8 of 8 kills did); the rerun gives the uninterrupted run's report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vla_eval.episodes import Episode, write_episodes

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("episodes") / "e.jsonl"
    eps = [
        Episode(task, split, seed, (seed * 7 + len(task)) % 3 != 0)
        for task in ("pick", "place")
        for split in ("seen", "unseen")
        for seed in range(20)
    ]
    write_episodes(path, eps)
    return path


def _report(episodes: Path, out: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VLA_EVAL_TEST_KILL_AT"}
    if kill_at:
        env["VLA_EVAL_TEST_KILL_AT"] = kill_at
    cmd = [sys.executable, "-m", "vla_eval.cli", "report", str(episodes), "--out", str(out)]
    return subprocess.run([*cmd, "--bootstrap", "200"], env=env, capture_output=True, text=True)


def _content(out: Path) -> dict:
    report = json.loads((out / "report.json").read_text())
    report["provenance"].pop("created")
    report["provenance"].pop("command")
    return report


@pytest.fixture(scope="module")
def reference(episodes: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("reference")
    assert _report(episodes, out).returncode == 0
    return _content(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kill_at, earlier",
    [
        ("report.json:1:during", False),
        ("report.json:1:after", False),
        ("forest.png:1:during", False),
        ("forest.png:1:after", False),
        ("report.json:1:during", True),
        ("forest.png:1:during", True),
    ],
)
def test_kill_at_each_write_then_rerun(
    episodes: Path, reference: dict, tmp_path: Path, kill_at: str, earlier: bool
) -> None:
    out = tmp_path / "report"
    if earlier:  # a report from an earlier run is there: the kill must not damage it
        assert _report(episodes, out).returncode == 0
        before = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    proc = _report(episodes, out, kill_at)
    assert proc.returncode == -signal.SIGKILL
    visible = {p.name: p.read_bytes() for p in out.iterdir() if not p.name.startswith(".")}
    for name, data in visible.items():  # every file there is whole: old or new, never cut
        if name.endswith(".png"):
            assert data[:8] == PNG
        elif name.endswith(".json"):
            json.loads(data)
        else:  # report.md, report.html: written through the same atomic writer
            assert data.strip()
        if earlier and name.endswith(".png") and kill_at.startswith("forest.png:1:during"):
            assert data == before[name]
    assert ("report.json" in visible) == (earlier or kill_at != "report.json:1:during")
    assert _report(episodes, out).returncode == 0  # the rerun cleans up and finishes
    assert _content(out) == reference
    names = sorted(p.name for p in out.iterdir())
    assert [n for n in names if n.startswith(".")] == [".vla-eval.lock"]  # no temp file left
    assert {"forest.png", "report.json"} <= set(names)


def test_second_writer_on_a_report_folder_is_refused(episodes: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    hold = textwrap.dedent(
        """
        import sys, time
        from vla_eval.locking import output_lock
        with output_lock(sys.argv[1], "report directory", directory=True):
            open(sys.argv[1] + "/report.json", "w").write('{"first": true}')
            print("locked", flush=True)
            time.sleep(60)
        """
    )
    first = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE)
    try:
        assert first.stdout is not None and first.stdout.readline() == b"locked\n"
        other = tmp_path / "b.jsonl"
        write_episodes(other, [Episode("pick", "seen", s, True, policy="b") for s in range(5)])
        for command, files in (("report", [episodes]), ("compare", [episodes, other])):
            cmd = [sys.executable, "-m", "vla_eval.cli", command, *map(str, files)]
            proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
            assert proc.returncode == 2, proc.stderr
            error = [line for line in proc.stderr.splitlines() if "warning" not in line]
            assert len(error) == 1 and f"(pid {first.pid})" in error[0], proc.stderr
        assert json.loads((out / "report.json").read_text()) == {"first": True}
        assert not (out / "compare.json").exists()
    finally:
        first.kill()
        first.wait()
