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
