"""`make_env`: every name the command line accepts, options, unknown names."""

from __future__ import annotations

import pytest

from vla_eval.envs import Env, make_env
from vla_eval.envs.tabletop import TabletopEnv
from vla_eval.errors import UsageError


def test_tabletop_by_name() -> None:
    env = make_env("tabletop")
    assert isinstance(env, TabletopEnv) and isinstance(env, Env)
    with pytest.raises(UsageError, match="takes no options"):
        make_env("tabletop", images=True)


@pytest.mark.sim
@pytest.mark.parametrize(
    ("name", "benchmark"),
    [("metaworld", "MT10"), ("metaworld-mt10", "MT10"), ("metaworld-ml10", "ML10")],
)
def test_metaworld_by_name(name: str, benchmark: str) -> None:
    pytest.importorskip(
        "metaworld", reason="Meta-World is not installed (pip install 'vla-eval[sim]')"
    )
    env = make_env(name, max_steps=7, progress=False)
    try:
        assert env.name == "metaworld" and env.benchmark == benchmark
        assert all(t.spec.max_steps == 7 for t in env.tasks)
    finally:
        env.close()


def test_unknown_environment() -> None:
    with pytest.raises(UsageError, match="unknown environment 'mujoco'"):
        make_env("mujoco")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 2}, "--workers is for Gymnasium environments"),
        ({"success_key": "done"}, "--success-key is for Gymnasium environments"),
    ],
)
def test_gymnasium_options_are_refused_for_built_in_worlds(options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_env("tabletop", **options)


def test_gymnasium_ids_and_environment_files(tmp_path) -> None:
    pytest.importorskip("gym_pusht", reason="needs the gym extra: pip install 'vla-eval[gym]'")
    from vla_eval.envs.gym.env import GymEnv

    with make_env("gym:gym_pusht:gym_pusht/PushT-v0", success_key="is_success") as env:
        assert isinstance(env, GymEnv) and isinstance(env, Env)
        assert env.name == "gym:gym_pusht/PushT-v0" and [t.key for t in env.tasks] == [
            "PushT-v0/seen"
        ]
    path = tmp_path / "pusht.toml"
    path.write_text(
        '[env]\nid = "gym_pusht/PushT-v0"\ntask = "push-t"\nmax_steps = 50\n'
        "[splits.seen]\n[splits.unseen]\nseeds_from = 500\n",
        encoding="utf-8",
    )
    with make_env(str(path), workers=2, obs_type="pixels_agent_pos", max_steps=20) as env:
        assert [t.key for t in env.tasks] == ["push-t/seen", "push-t/unseen"]
        assert [t.spec.max_steps for t in env.tasks] == [20, 20]  # the caller's limit wins
        assert env.tasks[1].spec.kwargs == {"obs_type": "pixels_agent_pos"}
        assert env.preferred_batch_size == 2
    # the version changes with anything that changes episodes
    with (
        make_env("gym:gym_pusht/PushT-v0") as a,
        make_env("gym:gym_pusht/PushT-v0", damping=1.0) as b,
    ):
        assert a.version != b.version and a.version.startswith("gym-pusht-")
