"""Observations as policies get them: raw entries flattened, plus image/state/instruction.

The expected values are the environment's own observations (gym-pusht's, and those of a
small environment defined here with two cameras, a nested state and a text entry),
rearranged by hand.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium", reason="needs the gym extra: pip install 'vla-eval[gym]'")
pytest.importorskip("gym_pusht", reason="needs the gym extra: pip install 'vla-eval[gym]'")

from vla_eval.envs import make_env  # noqa: E402
from vla_eval.envs.gym.observations import ObsLayout, read_layout  # noqa: E402

CAMERAS_ID = "vla_eval_tests/TwoCameras-v0"


class TwoCameras(gym.Env):
    """Two cameras, a nested state and an instruction; every value derived from the seed."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        image = gym.spaces.Box(0, 255, (4, 5, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(
            {
                "pixels": gym.spaces.Dict({"top": image, "wrist": image}),
                "robot": gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (3,), np.float64)}),
                "instruction": gym.spaces.Text(40, charset="abcdefghijklmnopqrstuvwxyz0123456789 "),
            }
        )
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def _obs(self) -> dict:
        return {
            "pixels": {
                "top": np.full((4, 5, 3), self.value, np.uint8),
                "wrist": np.full((4, 5, 3), self.value + 1, np.uint8),
            },
            "robot": {"state": np.array([self.value, 0.5, -0.25])},
            "instruction": f"go to {self.value}",
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.value = int(self.np_random.integers(0, 100))
        return self._obs(), {}

    def step(self, action):
        self.value += 1
        return self._obs(), 0.0, False, False, {"is_success": self.value % 3 == 0}


if CAMERAS_ID not in gym.registry:
    gym.register(CAMERAS_ID, entry_point=TwoCameras)


def test_pusht_pixels_and_agent_position() -> None:
    with make_env("gym:gym_pusht/PushT-v0", obs_type="pixels_agent_pos") as env:
        obs = env.reset([4, 9], env.tasks[0])
    direct = gym.make("gym_pusht/PushT-v0", obs_type="pixels_agent_pos")
    expected = [direct.reset(seed=s)[0] for s in (4, 9)]
    assert sorted(obs) == ["agent_pos", "image", "pixels", "state"]
    np.testing.assert_array_equal(obs["pixels"], np.stack([e["pixels"] for e in expected]))
    np.testing.assert_array_equal(obs["image"], obs["pixels"])  # the only camera
    assert obs["image"].dtype == np.uint8 and obs["image"].shape == (2, 96, 96, 3)
    assert obs["state"].dtype == np.float32
    np.testing.assert_array_equal(
        obs["state"], np.stack([e["agent_pos"] for e in expected]).astype(np.float32)
    )
    assert "instruction" not in obs


def test_pusht_state_vector_is_the_state() -> None:
    with make_env("gym:gym_pusht/PushT-v0") as env:
        obs = env.reset([4], env.tasks[0])
    raw = gym.make("gym_pusht/PushT-v0").reset(seed=4)[0]
    np.testing.assert_array_equal(obs["observation"][0], raw)
    assert obs["observation"].dtype == np.float64  # as the environment gives it
    np.testing.assert_array_equal(obs["state"][0], raw.astype(np.float32))


def test_several_cameras_nested_state_and_text() -> None:
    seeds = [3, 8]
    with make_env(f"gym:{CAMERAS_ID}") as env:
        obs = env.reset(seeds, env.tasks[0])
    values = [int(TwoCameras().reset(seed=s)[0]["robot"]["state"][0]) for s in seeds]
    assert sorted(obs) == [
        "image",
        "image/top",
        "image/wrist",
        "instruction",
        "pixels/top",
        "pixels/wrist",
        "robot/state",
        "state",
    ]
    np.testing.assert_array_equal(obs["image"][:, 0, 0, 0], values)  # first camera by key
    np.testing.assert_array_equal(obs["image/top"], obs["pixels/top"])
    np.testing.assert_array_equal(obs["image/wrist"][:, 0, 0, 0], [v + 1 for v in values])
    np.testing.assert_array_equal(obs["state"], [[v, 0.5, -0.25] for v in values])
    assert obs["instruction"] == [f"go to {v}" for v in values]


def test_layout_rules_on_spaces() -> None:
    box = gym.spaces.Box(0, 1, (2,), np.float32)
    image = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
    # observation.state wins over nothing; an image of another dtype is not a camera
    space = gym.spaces.Dict(
        {
            "observation.state": box,
            "observation.images.top": image,
            "depth": gym.spaces.Box(0, 1, (8, 8, 3), np.float32),
        }
    )
    assert read_layout(space) == ObsLayout(
        (("observation.images.top", "top"),), "observation.state", None
    )
    # agent_pos comes before state; a bare image is the camera "observation"
    assert read_layout(gym.spaces.Dict({"state": box, "agent_pos": box})).state == "agent_pos"
    assert read_layout(image) == ObsLayout((("observation", "observation"),), None, None)
    # two cameras with the same last name keep their full keys
    both = gym.spaces.Dict(
        {"a": gym.spaces.Dict({"rgb": image}), "b": gym.spaces.Dict({"rgb": image})}
    )
    assert read_layout(both).cameras == (("a/rgb", "a/rgb"), ("b/rgb", "b/rgb"))
