"""Streaming counts: the same numbers and errors as the full table, without per-episode memory."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter as Tally

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.episodes import EpisodeCounts, count_episodes, load_episodes
from vla_eval.episodes.counts import Counter
from vla_eval.errors import DataError

SEEDS = st.one_of(
    st.integers(0, 200),  # consecutive-ish, the common case
    st.integers(-(2**63), 2**63 - 1),  # anywhere in the 64-bit range
    st.sampled_from([-(2**63), 2**63 - 1, -1, 63, 64, -64, -65]),  # block edges
)
ROWS = st.lists(
    st.tuples(
        st.sampled_from(["", "a"]),
        st.sampled_from(["pick", "place", "pour"]),
        st.sampled_from(["seen", "unseen"]),
        SEEDS,
        st.booleans(),
    ),
    max_size=40,
)


def _write(path, rows):
    with open(path, "w") as fh:
        for policy, task, split, seed, ok in rows:
            rec = {"task": task, "split": split, "seed": seed, "success": ok}
            if policy:
                rec["policy"] = policy
            fh.write(json.dumps(rec) + "\n")
    return path


@settings(max_examples=150, deadline=None)
@given(rows=ROWS, cut=st.integers(0, 40))
def test_counts_equal_a_hand_tally_and_errors_equal_the_tables(tmp_path_factory, rows, cut):
    folder = tmp_path_factory.mktemp("c")
    files = [_write(folder / "a.jsonl", rows[:cut]), _write(folder / "b.jsonl", rows[cut:])]
    keys = [(p, t, s, seed) for p, t, s, seed, _ in rows]
    if len(set(keys)) != len(keys):
        with pytest.raises(DataError) as from_table:
            load_episodes(files)
        with pytest.raises(DataError) as from_counts:
            count_episodes(files)
        # same first repeat, same place of the first copy, same words
        assert str(from_counts.value) == str(from_table.value)
        return
    wins, trials = Tally(), Tally()
    for p, t, s, _, ok in rows:
        wins[(p, t, s)] += ok
        trials[(p, t, s)] += 1
    counts = count_episodes(files)
    assert {(c.policy, c.task, c.split): (c.successes, c.trials) for c in counts.cells} == {
        key: (wins[key], n) for key, n in trials.items()
    }
    assert counts.episodes == len(rows)
    assert counts.order("task") == list(dict.fromkeys(t for _, t, _, _, _ in rows))
    # the table's own counts agree
    table = EpisodeCounts.from_table(load_episodes(files))
    assert sorted(table.cells, key=repr) == sorted(counts.cells, key=repr)
    assert table.episodes == counts.episodes


def test_seed_outside_64_bits_is_an_error(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(f"task,split,seed,success\npick,seen,{2**63},1\n")
    with pytest.raises(DataError, match=r"x\.csv:2: seed 9223372036854775808 is outside"):
        count_episodes([path])


def test_name_that_cannot_be_printed_is_an_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"task": "pi\\u0000ck", "split": "seen", "seed": 0, "success": true}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:1: task .* control character"):
        count_episodes([path])


def test_policy_name_overrides_every_record(tmp_path):
    rows = [("a", "pick", "seen", 0, True), ("", "pick", "seen", 1, False)]
    counts = count_episodes([_write(tmp_path / "x.jsonl", rows)], policy_name="mine")
    assert [(c.policy, c.successes, c.trials) for c in counts.cells] == [("mine", 1, 2)]


def test_group_field_of_jsonl_records(tmp_path):
    path = tmp_path / "x.jsonl"
    lines = [
        {"task": "t0", "split": "seen", "seed": 0, "success": True, "group": "suite_a"},
        {"task": "t1", "split": "seen", "seed": 0, "success": True},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert count_episodes([path]).task_groups == {"t0": "suite_a"}
    lines.append({"task": "t0", "split": "seen", "seed": 1, "success": True, "group": 3})
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    with pytest.raises(DataError, match=r"x\.jsonl:3: 'group' must be a non-empty string"):
        count_episodes([path])


def test_memory_does_not_grow_with_the_episodes():
    # 200,000 episodes in 8 cells with consecutive seeds: what is kept is the counts and
    # a bitset of one small integer per 64 seeds -- well under 2 bytes per episode,
    # against ~30 for the table's columns and ~100 for a set of seeds.
    counter = Counter()
    src = counter.start_file("f")
    tracemalloc.start()
    try:
        for cell in range(8):
            task = f"task{cell}"
            for seed in range(25_000):
                counter.add("", task, "seen", seed, seed % 3 == 0, src, seed + 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # 5 bytes per episode at most
    counts = counter.counts()
    assert [c.successes for c in counts.cells] == [len(range(0, 25_000, 3))] * 8
    assert counts.episodes == 200_000


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pick", "place"]), st.sampled_from(["seen"]), SEEDS)))
def test_key_set_is_a_set_of_keys(tmp_path_factory, keys):
    from vla_eval.episodes.counts import episode_keys

    path = tmp_path_factory.mktemp("k") / "e.jsonl"
    unique = list(dict.fromkeys(keys))
    _write(path, [("", t, s, seed, True) for t, s, seed in unique])
    got = episode_keys(path)
    assert len(got) == len(unique)
    assert all(k in got for k in unique)
    probes = [(t, s, seed + d) for t, s, seed in unique for d in (-1, 1)] + [("pour", "seen", 0)]
    for probe in probes:
        assert (probe in got) == (probe in set(unique))
    assert ("pick", "seen", "0") not in got


def test_group_name_that_cannot_be_printed_is_an_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"task": "t", "split": "s", "seed": 0, "success": true, "group": "\\ud800"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:1: group .* not valid Unicode"):
        count_episodes([path])
