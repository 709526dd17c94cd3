"""The one write path and the output locks: atomic files, umask modes, leftovers, locks.

Every claim is checked against the operating system directly: file modes with
``os.stat``, lock holders with real second processes, kills with real SIGKILLs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vla_eval.errors import UsageError
from vla_eval.locking import lock_file_for, output_lock
from vla_eval.results import atomic_write, clean_leftovers, save_figure, write_json
from vla_eval.trainer.run_dir import latest_checkpoint

HOLD = textwrap.dedent(
    """
    import sys, time
    from vla_eval.locking import output_lock
    with output_lock(sys.argv[1], "test output", directory=sys.argv[2] == "dir"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def _holder(path: Path, directory: bool) -> subprocess.Popen:
    """A second process that takes the lock of `path` and holds it until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "dir" if directory else "file"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_write_mode_follows_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode  # 0o666 & ~umask, as for any created file
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_clean_leftovers_removes_only_dead_writers_temporaries(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getppid()
    ours_dead = tmp_path / f".a.json.vla-eval-tmp.{dead}.0a1b2c3d"
    ours_live = tmp_path / f".b.json.vla-eval-tmp.{live}.0a1b2c3d"
    legacy = tmp_path / ".step_000001.pt.k2j_x9ab.tmp"  # tempfile.mkstemp's name, older versions
    foreign = [tmp_path / ".hidden", tmp_path / "notes.tmp", tmp_path / ".x.vla-eval-tmp.abc"]
    for p in [ours_dead, ours_live, legacy, *foreign]:
        p.write_text("x")
    assert sorted(clean_leftovers(tmp_path)) == sorted([ours_dead, legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in [ours_live, *foreign]
    )
    assert clean_leftovers(tmp_path / "missing") == []


def test_save_figure_is_atomic_under_sigkill(tmp_path: Path) -> None:
    """A kill while a PNG is written leaves the previous PNG, never a 0-byte or cut one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, tmp_path / "forest.png")
    before = path.read_bytes()
    assert before[:8] == b"\x89PNG\r\n\x1a\n"
    script = textwrap.dedent(
        f"""
        import matplotlib; matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from vla_eval.plots.common import save
        fig, ax = plt.subplots(); ax.plot([1, 0], [0, 1])
        save(fig, {str(path)!r})
        """
    )
    env = {**os.environ, "VLA_EVAL_TEST_KILL_AT": "forest.png:1:during"}
    proc = subprocess.run([sys.executable, "-c", script], env=env)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    leftovers = [p for p in tmp_path.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the killed temporary
    assert clean_leftovers(tmp_path) == leftovers


def test_latest_checkpoint_sorts_steps_as_numbers(tmp_path: Path) -> None:
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for name in ["step_999999.pt", "step_1000000.pt", "step_000008.pt", ".step_2000000.pt.x.tmp"]:
        (ckpts / name).write_bytes(b"x")
    assert latest_checkpoint(tmp_path) == ckpts / "step_1000000.pt"


@pytest.mark.parametrize("directory", [False, True])
def test_second_writer_is_refused_with_the_holders_pid(tmp_path: Path, directory: bool) -> None:
    out = tmp_path / ("run" if directory else "episodes.jsonl")
    proc = _holder(out, directory)
    try:
        started = time.perf_counter()
        with (
            pytest.raises(UsageError) as err,
            output_lock(out, "episodes file", directory=directory),
        ):
            pass
        assert time.perf_counter() - started < 1.0  # at once, never waiting
        message = str(err.value)
        assert f"(pid {proc.pid})" in message and str(out) in message and "\n" not in message
    finally:
        proc.kill()
        proc.wait()
    # A SIGKILLed holder leaves its lock file but not its lock: the next writer proceeds.
    assert lock_file_for(out, directory).exists()
    with output_lock(out, "episodes file", directory=directory) as lock:
        assert lock.read_text() == f"{os.getpid()}\n"


def test_lock_is_reentrant_in_one_process_and_released_after(tmp_path: Path) -> None:
    out = tmp_path / "report"
    with output_lock(out, directory=True), output_lock(out, directory=True):
        pass
    proc = _holder(out, True)  # released: another process can take it now
    proc.kill()
    proc.wait()


def test_lock_on_unusable_paths_is_one_clear_error(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (a_file, True, "is a file, not a folder"),
        (tmp_path, False, "is a folder"),
        (a_file / "sub" / "out.jsonl", False, "cannot create the folder"),
        (Path(os.devnull), False, "not a regular file"),
    ]
    for path, directory, message in cases:
        with pytest.raises(UsageError, match=message), output_lock(path, directory=directory):
            pass
