"""The crash-safe episode writer: round trips, appending, validation, a cut-off tail."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.episodes import (
    SCHEMA,
    Episode,
    EpisodeWriter,
    load_episodes,
    read_episodes,
    write_episodes,
)
from vla_eval.errors import DataError, UsageError
from vla_eval.jsonl import TruncatedLineWarning


def _line(**kw):
    rec = {"task": "pick", "split": "seen", "seed": 0, "success": True}
    rec.update(kw)
    return json.dumps(rec)


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "e.jsonl"
    ep = Episode(
        "pick",
        "unseen",
        7,
        False,
        policy="ckpt-2000",
        steps=41,
        episode_return=0.5,
        instruction="pick up the red block",
        env={"name": "tabletop", "version": "1"},
        extra={"actions": [[0.1, 0.2]]},
    )
    with EpisodeWriter(path) as w:
        w.write(ep)
    raw = json.loads(path.read_text().splitlines()[0])
    assert raw["schema"] == SCHEMA and raw["return"] == 0.5 and raw["actions"] == [[0.1, 0.2]]
    assert read_episodes([path]) == [ep]


def test_writer_appends_one_line_per_episode_and_flushes(tmp_path):
    path = tmp_path / "e.jsonl"
    w = EpisodeWriter(path, fsync=True)
    w.write(Episode("pick", "seen", 0, True))
    # Readable before close: the line was flushed.
    assert len(load_episodes([path])) == 1
    w.write({"task": "pick", "split": "seen", "seed": 1, "success": False})
    w.close()
    with EpisodeWriter(path) as w2:  # reopening appends
        w2.write(Episode("pick", "seen", 2, True))
    table = load_episodes([path])
    assert table.seed.tolist() == [0, 1, 2]
    assert table.success.tolist() == [True, False, True]
    with pytest.raises(UsageError):
        w.write(Episode("pick", "seen", 3, True))


def test_writer_rejects_invalid_record(tmp_path):
    with EpisodeWriter(tmp_path / "e.jsonl") as w, pytest.raises(DataError, match="seed"):
        w.write({"task": "pick", "split": "seen", "seed": "7", "success": True})


def test_writer_cuts_a_truncated_tail_before_appending(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text(_line(seed=0) + "\n" + _line(seed=1)[:20])
    with pytest.warns(TruncatedLineWarning, match=r"e\.jsonl:2"), EpisodeWriter(path) as w:
        w.write(Episode("pick", "seen", 2, False))
    table = load_episodes([path])
    assert table.seed.tolist() == [0, 2]


records = st.lists(
    st.tuples(
        st.sampled_from(["pick", "place", "stack"]),
        st.sampled_from(["seen", "unseen"]),
        st.integers(-(2**40), 2**40),
        st.booleans(),
    ),
    max_size=40,
    unique_by=lambda r: r[:3],
)


@given(records)
@settings(max_examples=40, deadline=None)
def test_write_then_load_round_trips(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("h") / "e.jsonl"
    write_episodes(path, [Episode(t, s, seed, ok) for t, s, seed, ok in rows])
    if not rows:
        assert len(load_episodes([path])) == 0
        return
    table = load_episodes([path])
    got = list(
        zip(
            table.task.tolist(),
            table.split.tolist(),
            table.seed.tolist(),
            table.success.tolist(),
            strict=True,
        )
    )
    assert got == rows


def test_writer_accepts_numpy_scalars_from_a_rollout_loop(tmp_path):
    path = tmp_path / "e.jsonl"
    with EpisodeWriter(path) as w:
        w.write(
            {
                "task": "pick",
                "split": "seen",
                "seed": np.int64(3),
                "success": np.bool_(True),
                "steps": np.int32(12),
                "return": np.float32(0.5),
            }
        )
    (ep,) = read_episodes([path])
    assert (ep.seed, ep.success, ep.steps, ep.episode_return) == (3, True, 12, 0.5)


_OTHER_WRITER = (
    "import sys\n"
    "from vla_eval.episodes import Episode, EpisodeWriter\n"
    "from vla_eval.errors import UsageError\n"
    "try:\n"
    "    with EpisodeWriter(sys.argv[1]) as w:\n"
    "        w.write(Episode('pick', 'seen', 99, True))\n"
    "except UsageError as exc:\n"
    "    print(exc)\n"
    "    sys.exit(2)\n"
)


def _other_process_writes(path):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", _OTHER_WRITER, str(path)], capture_output=True, text=True
    )


def test_writer_locks_its_file_against_another_process(tmp_path):
    import os

    path = tmp_path / "episodes.jsonl"
    with EpisodeWriter(path) as w:
        w.write(Episode("pick", "seen", 0, True))
        other = _other_process_writes(path)
        assert other.returncode == 2
        assert f"episodes file {path} is being written by another vla-eval process " \
               f"(pid {os.getpid()})" in other.stdout  # fmt: skip
        w.write(Episode("pick", "seen", 1, False))
    # the first writer's records are intact and alone
    assert [e.seed for e in read_episodes([path])] == [0, 1]
    # released on close: now the other process may append
    assert _other_process_writes(path).returncode == 0
    assert [e.seed for e in read_episodes([path])] == [0, 1, 99]


def test_writer_inside_the_same_process_lock_is_granted(tmp_path):
    from vla_eval.locking import output_lock

    path = tmp_path / "episodes.jsonl"
    with output_lock(path, "episodes file"):  # what the online runner holds
        with EpisodeWriter(path) as w:
            w.write(Episode("pick", "seen", 0, True))
        # closing the inner writer does not release the runner's lock
        assert _other_process_writes(path).returncode == 2
    assert _other_process_writes(path).returncode == 0
