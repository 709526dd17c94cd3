"""Policy plug-ins: names from real entry points, ``package.module:factory`` specs, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vla_eval.cli import main
from vla_eval.envs.tabletop import ExpertPolicy, TabletopEnv
from vla_eval.errors import UsageError
from vla_eval.policies import make_policy, registered

ROOT = Path(__file__).parents[2]
PLUGINS = "tests.policies.plugins"


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """``tests.policies.plugins`` imports however pytest was started."""
    monkeypatch.syspath_prepend(str(ROOT))


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def install_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """A real installed distribution (a ``.dist-info`` folder) declaring policy entry points."""
    info = site / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[vla_eval.policies]\n{lines}")


def test_the_builtins_are_registered_entry_points() -> None:
    names = registered()
    assert names["tinyvla"] == "vla_eval.policies.builtin:tinyvla"
    assert names["expert"] == "vla_eval.policies.builtin:expert"
    named = make_policy("expert", TabletopEnv())
    assert isinstance(named.policy, ExpertPolicy) and named.spec == "expert"


def test_an_installed_package_registers_a_policy(tmp_path, monkeypatch, capsys) -> None:
    install_distribution(tmp_path / "site", "lab_policies", {"still": f"{PLUGINS}:constant"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert registered()["still"] == f"{PLUGINS}:constant"
    out = tmp_path / "still.jsonl"
    argv = ["online", "--policy", "still", "--policy-arg", "value=0", "--tasks", "pick"]
    assert main([*argv, "--trials", "2", "--out", str(out), "--no-progress", "--json"]) == 0
    recs = records(out)
    # An idle gripper never picks: every episode runs to pick's 24-step limit and fails.
    assert [(r["policy"], r["success"], r["steps"]) for r in recs] == [("still", False, 24)] * 4
    # An unknown name lists the registered ones, the new one included.
    capsys.readouterr()
    assert main(["online", "--policy", "stil", "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "unknown policy 'stil'; registered policies: " in err
    assert all(name in err for name in ("expert", "still", "tinyvla"))
    assert err.count("\n") == 1


def test_a_module_spec_with_arguments() -> None:
    env = TabletopEnv()
    named = make_policy(f"{PLUGINS}:constant", env, value=0.25)
    obs = env.reset([0, 1, 2], "pick/seen")
    obs["env_index"] = np.arange(3)
    np.testing.assert_array_equal(named.policy(obs), np.full((3, 7), 0.25))
    # No name and no fingerprint: the spec names it; spec, environment and args identify it.
    assert named.name == f"{PLUGINS}:constant"
    assert named.policy_id == f'{PLUGINS}:constant:tabletop:{{"value": 0.25}}'
    assert make_policy(f"{PLUGINS}:constant", env).policy_id == f"{PLUGINS}:constant:tabletop"
    # A policy's own name and fingerprint win.
    flaky = make_policy(f"{PLUGINS}:flaky", env, fail_at=3)
    assert (flaky.name, flaky.policy_id, flaky.args) == ("flaky", "flaky-expert/1", {"fail_at": 3})


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--policy", "tests.policies.nowhere:make"], "no module named 'tests.policies.nowhere'"),
        (["--policy", f"{PLUGINS}:nothing"], f"module {PLUGINS} has no attribute 'nothing'"),
        (["--policy", f"{PLUGINS}:NOT_CALLABLE"], "is a str, not a factory"),
        (
            ["--policy", f"{PLUGINS}:broken"],
            f"policy factory {PLUGINS}:broken failed: ValueError: no weights here",
        ),
        (["--policy", f"{PLUGINS}:not_a_policy"], "returned a int, not a policy"),
        (["--policy", f"{PLUGINS}:needs_weights"], "missing a required argument: 'weights'"),
        (["--policy", "expert", "--policy-arg", "speed=2"], "it takes no policy arguments"),
        (["--policy", "tinyvla"], "missing a required argument: 'path'"),
        (["--policy", "expert", "--policy-arg", "speed"], "--policy-arg expects KEY=VALUE"),
        (["--policy", "expert", "--policy-arg", "a=1", "--policy-arg", "a=2"], "given twice"),
        (["expert", "--policy", "expert"], "name the policy once"),
        ([], "name a policy"),
        (["none.pt"], "none.pt: no such checkpoint file"),
        (
            ["--policy", f"{PLUGINS}:wrong_shape"],
            "returned actions of shape (8, 8); the environment needs (N, D) = (8, 7) or "
            "(N, C, D) = (8, C, 7)",
        ),
        (["--policy", f"{PLUGINS}:chunk_of_nan"], "returned NaN or infinite actions"),
    ],
)
def test_bad_policies_are_one_line_errors(argv, fragment, tmp_path, capsys) -> None:
    out = tmp_path / "bad.jsonl"
    base = ["online", "--tasks", "pick", "--trials", "4", "--out", str(out), "--no-progress"]
    assert main([*base, *argv]) == 2
    err = capsys.readouterr().err
    assert fragment in err, err
    assert err.count("\n") == 1 and err.startswith("vla-eval: error: ")


def test_a_module_that_fails_to_import_says_why(tmp_path, monkeypatch) -> None:
    (tmp_path / "lab_broken.py").write_text("import a_dependency_nobody_has\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lab_broken", raising=False)
    with pytest.raises(UsageError, match="importing lab_broken failed: ModuleNotFoundError"):
        make_policy("lab_broken:make", TabletopEnv())


def test_checkpoint_shorthand_and_tinyvla_spec_are_one_run(tmp_path, smoke_checkpoint) -> None:
    common = ["--tasks", "pick", "--splits", "seen", "--trials", "2", "--no-progress"]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main(["online", str(smoke_checkpoint), *common, "--out", str(a)]) == 0
    spec = ["--policy", "tinyvla", "--policy-arg", f"path={smoke_checkpoint}"]
    assert main(["online", *spec, "--policy-arg", "threads=1", *common, "--out", str(b)]) == 0
    ra, rb = records(a), records(b)
    assert {r["run"] for r in ra} == {r["run"] for r in rb}  # the same fingerprint
    assert ra[0]["policy"] == rb[0]["policy"] == smoke_checkpoint.stem
