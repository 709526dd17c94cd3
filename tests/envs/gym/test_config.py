"""Environment files and ``gym:`` names: what they read to, and the errors.

Expected values are written out by hand from the TOML in each test; reading imports no
Gymnasium, so these tests run without the ``gym`` extra.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vla_eval.envs.gym import (
    GymSplit,
    config_from_tables,
    parse_env_spec,
    read_env_file,
)
from vla_eval.errors import UsageError

PUSHT = """
[env]
id = "gym_pusht/PushT-v0"
kwargs = { obs_type = "state", damping = 0.1 }
success_key = "is_success"
max_steps = 200
task = "push-t"
instruction = "push the T onto the green target"

[splits.seen]
seeds_from = 0

[splits.unseen]
env_args = { damping = 0.5, block_cog = [0, 60] }
seeds_from = 100000
"""


def _write(tmp_path: Path, text: str, name: str = "env.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_an_environment_file_with_two_splits(tmp_path: Path) -> None:
    config = read_env_file(_write(tmp_path, PUSHT))
    assert config.env_id == "gym_pusht/PushT-v0" and config.module is None
    assert config.success_key == "is_success" and config.task_name == "push-t"
    assert config.instruction == "push the T onto the green target"
    assert list(config.splits) == ["seen", "unseen"]  # the file's order
    seen, unseen = config.splits["seen"], config.splits["unseen"]
    assert seen.kwargs == {"obs_type": "state", "damping": 0.1}
    # the split's own arguments are laid over the common ones
    assert unseen.kwargs == {"obs_type": "state", "damping": 0.5, "block_cog": [0, 60]}
    assert (seen.seeds_from, unseen.seeds_from) == (0, 100000)
    assert seen.max_steps == unseen.max_steps == 200
    # a split is a frozen value: hashable, equal by content, whatever the key order
    assert {
        seen,
        GymSplit(
            json.dumps(
                {"damping": 0.1, "obs_type": "state"}, sort_keys=True, separators=(",", ":")
            ),
            0,
            200,
        ),
    } == {seen}


def test_without_splits_there_is_one_seen_split_and_overrides_win(tmp_path: Path) -> None:
    text = '[env]\nid = "gym_pusht:gym_pusht/PushT-v0"\nkwargs = { obs_type = "state" }\n'
    config = read_env_file(_write(tmp_path, text), overrides={"obs_type": "pixels"})
    assert (config.module, config.env_id) == ("gym_pusht", "gym_pusht/PushT-v0")
    assert list(config.splits) == ["seen"]
    assert config.splits["seen"] == GymSplit('{"obs_type":"pixels"}', 0, None)
    assert config.task_name == "PushT-v0"  # the id without its namespace


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[env]\nid = "X-v0"\nseed = 3\n', "unknown key env.seed"),
        ("[env]\nkwargs = {}\n", "missing required key env.id"),
        ("[env]\nid = 3\n", "env.id must be a string"),
        ('[env]\nid = "X-v0"\nmax_steps = "many"\n', "env.max_steps must be an integer"),
        ('[env]\nid = "X-v0"\nmax_steps = 0\n', "env.max_steps must be at least 1"),
        ('[env]\nid = "X-v0"\n[splits.seen]\nseeds = 1\n', "unknown key splits.seen.seeds"),
        ('[env]\nid = "X-v0"\n[splits.seen]\nseeds_from = -1\n', "splits.seen.seeds_from"),
        (
            '[env]\nid = "X-v0"\n[splits.seen]\nenv_args = 1\n',
            "splits.seen.env_args must be a table",
        ),
        ('[env]\nid = "X-v0"\nkwargs = { when = 1979-05-27 }\n', "numbers, strings"),
        ('[env]\nid = "X-v0"\n[other]\n', "unknown key other"),
        ("[splits.seen]\n", "missing required section [env]"),
        ("[env\n", "not valid TOML"),
    ],
)
def test_a_bad_file_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as caught:
        read_env_file(path)
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such environment file"):
        read_env_file(tmp_path / "absent.toml")


def test_a_protocol_section_reads_the_same_way() -> None:
    """Another file format hands its [env] and [splits] tables to the same reader."""
    config = config_from_tables(
        {"id": "CartPole-v1"}, {"unseen": {"seeds_from": 7}}, "protocol.toml"
    )
    assert config.splits == {"unseen": GymSplit("{}", 7, None)}
    with pytest.raises(UsageError, match=r"protocol\.toml: splits must be a table"):
        config_from_tables({"id": "CartPole-v1"}, [1], "protocol.toml")


def test_gym_names() -> None:
    assert parse_env_spec("gym:gym_pusht/PushT-v0") == (None, "gym_pusht/PushT-v0")
    assert parse_env_spec("gym:metaworld:Meta-World/MT1") == ("metaworld", "Meta-World/MT1")
    for bad in ("gym:", "gym:a:b:c", "gym::X-v0", "gymX-v0"):
        with pytest.raises(UsageError, match="expected gym:ENV_ID or gym:MODULE:ENV_ID"):
            parse_env_spec(bad)


def test_reading_an_environment_file_imports_no_gymnasium_or_numpy(tmp_path: Path) -> None:
    path = _write(tmp_path, PUSHT)
    code = (
        "import sys\nfrom vla_eval.envs.gym import read_env_file\n"
        f"read_env_file({str(path)!r})\n"
        "print(sorted(m for m in ('gymnasium', 'numpy', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_example_environment_files_read() -> None:
    envs = Path(__file__).parents[3] / "protocols" / "envs"
    pusht = read_env_file(envs / "pusht.toml")
    assert pusht.splits["unseen"].kwargs == {"obs_type": "state", "block_cog": [0, 60]}
    assert pusht.splits["unseen"].seeds_from == 100000
    reach = read_env_file(envs / "metaworld-reach.toml")
    assert (reach.module, reach.env_id, reach.task_name) == ("metaworld", "Meta-World/MT1", "reach")
    assert [s.kwargs["seed"] for s in reach.splits.values()] == [0, 1]
