"""Sharded runs as a Slurm array or torchrun launches them: ``--shard auto``, shards with no
work, and reports over shard files that name what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vla_eval.errors import UsageError
from vla_eval.online import parse_shard

# 2 tasks x 2 splits x 3 seeds = 12 episodes in batches of 4: 3 batches
RUN = ["expert", "--trials", "3", "--batch-size", "4", "--tasks", "pick,place", "--no-progress"]


def _online(out: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK"))}
    environ.update(env, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "vla_eval.cli", "online", *RUN, "--out", str(out), *extra],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _keys(path: Path) -> list[tuple[str, str, int]]:
    lines = path.read_text().splitlines()
    return [(r["task"], r["split"], r["seed"]) for r in map(json.loads, lines)]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, (2, 3)),
        # --array=1-3: ids 1..3 are shards 0..2
        (
            {
                "SLURM_ARRAY_TASK_ID": "1",
                "SLURM_ARRAY_TASK_COUNT": "3",
                "SLURM_ARRAY_TASK_MIN": "1",
            },
            (0, 3),
        ),
        ({"RANK": "1", "WORLD_SIZE": "4"}, (1, 4)),
    ],
)
def test_auto_reads_slurm_and_torchrun(environ, expected):
    assert parse_shard("auto", environ) == expected


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3"},
        {"RANK": "x", "WORLD_SIZE": "2"},
    ],
)
def test_auto_without_a_usable_environment_is_a_usage_error(environ):
    with pytest.raises(UsageError, match="--shard auto"):
        parse_shard("auto", environ)


@pytest.fixture(scope="module")
def full_and_shards(tmp_path_factory):
    """The unsharded run, and the same run as a 3-task Slurm array (three processes)."""
    root = tmp_path_factory.mktemp("slurm")
    full = root / "full.jsonl"
    assert _online(full, {}).returncode == 0
    shards = []
    for i in range(3):
        out = root / f"shard{i}.jsonl"
        done = _online(
            out, {"SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_COUNT": "3"}, "--shard", "auto"
        )
        assert done.returncode == 0, done.stderr
        shards.append(out)
    return full, shards


def test_three_array_tasks_give_the_full_runs_episodes(full_and_shards):
    full, shards = full_and_shards
    union = [k for s in shards for k in _keys(s)]
    assert sorted(union) == sorted(_keys(full)) and len(union) == 12
    for i, s in enumerate(shards):
        manifest = json.loads(Path(f"{s}.shard.json").read_text())
        assert manifest["shard"] == [i, 3] and manifest["planned_episodes"] == 4


def test_more_shards_than_batches_exit_zero_and_say_so(tmp_path):
    out = tmp_path / "s7.jsonl"
    done = _online(
        out, {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "8"}, "--shard", "auto"
    )
    assert done.returncode == 0, done.stderr
    assert "shard 7/8 has no episodes to run" in done.stdout
    assert not out.exists()
    assert json.loads(Path(f"{out}.shard.json").read_text())["planned_episodes"] == 0


def test_report_over_shards_names_a_missing_shard(full_and_shards, capsys):
    from vla_eval.cli import main

    _, shards = full_and_shards
    capsys.readouterr()
    assert main(["report", str(shards[0]), str(shards[2]), "--json"]) == 0
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert any("shard 1/3 is missing (4 planned episodes" in w for w in body["warnings"])
    assert "shard 1/3 is missing" in captured.err
    assert main(["report", *map(str, shards), "--json"]) == 0
    assert not any("shard" in w for w in json.loads(capsys.readouterr().out)["warnings"])


def test_report_names_episodes_a_shard_lost(full_and_shards, tmp_path, capsys):
    from vla_eval.cli import main

    _, shards = full_and_shards
    cut = tmp_path / "shard0.jsonl"
    lines = shards[0].read_text().splitlines()
    cut.write_text("\n".join(lines[:-1]) + "\n")
    Path(f"{cut}.shard.json").write_text(Path(f"{shards[0]}.shard.json").read_text())
    lost = json.loads(lines[-1])
    assert main(["report", str(cut), str(shards[1]), str(shards[2]), "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any(
        "lacks 1 of its 4 planned episodes" in w
        and f"{lost['task']}/{lost['split']} seed {lost['seed']}" in w
        for w in warnings
    ), warnings


def test_report_refuses_shards_of_different_runs(full_and_shards, tmp_path, capsys):
    from vla_eval.cli import main

    _, shards = full_and_shards
    other = tmp_path / "other.jsonl"
    done = _online(
        other,
        {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3"},
        "--shard",
        "auto",
        "--max-steps",
        "50",
    )
    assert done.returncode == 0, done.stderr
    capsys.readouterr()
    assert main(["report", str(shards[1]), str(other)]) == 2
    assert "different runs" in capsys.readouterr().err
    assert main(["report", str(shards[1]), str(other), "--allow-mixed-runs", "--json"]) == 0
