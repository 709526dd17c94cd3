"""Fixtures for the LeRobot tests: small ACT and diffusion policies with random weights,
built through LeRobot's own classes and saved with ``save_pretrained``, and gym-pusht.

These tests need the ``lerobot`` package (run them with ``scripts/test-lerobot.sh``, which
builds its environment). Nothing may download: the Hugging Face hub is set offline before
lerobot is imported.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import numpy as np
import pytest

#: gym-pusht's image observations: 96 x 96 RGB, and the agent's 2-D position.
IMAGE = (3, 96, 96)
PUSHT = "gym_pusht/PushT-v0"


def pusht_stats(actions: np.ndarray | None = None) -> dict:
    """Normalisation statistics in LeRobot's layout: given ``actions`` (N, 2), theirs;
    otherwise a fixed spread over gym-pusht's [0, 512] square."""
    import torch

    if actions is None:
        mean, std = np.array([256.0, 256.0]), np.array([100.0, 100.0])
        low, high = np.zeros(2), np.full(2, 512.0)
    else:
        mean, std = actions.mean(0), actions.std(0)
        low, high = actions.min(0), actions.max(0)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    box = {"mean": t(mean), "std": t(std), "min": t(low), "max": t(high)}
    return {
        "observation.image": {
            "mean": torch.full((3, 1, 1), 0.5),
            "std": torch.full((3, 1, 1), 0.25),
            "min": torch.zeros((3, 1, 1)),
            "max": torch.ones((3, 1, 1)),
        },
        "observation.state": {
            "mean": t([256.0, 256.0]),
            "std": t([100.0, 100.0]),
            "min": t([0.0, 0.0]),
            "max": t([512.0, 512.0]),
        },
        "action": box,
    }


def build_policy(kind: str, path: Path, stats: dict | None = None, **overrides) -> Path:
    """A small ``act`` or ``diffusion`` policy with random weights, saved to ``path`` with
    its pre- and post-processors (LeRobot's own classes and factories throughout)."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors

    inputs = {
        "observation.image": PolicyFeature(FeatureType.VISUAL, IMAGE),
        "observation.state": PolicyFeature(FeatureType.STATE, (2,)),
    }
    outputs = {"action": PolicyFeature(FeatureType.ACTION, (2,))}
    common = dict(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        pretrained_backbone_weights=None,  # random weights: nothing is downloaded
    )
    torch.manual_seed(0)
    if kind == "act":
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy

        settings = dict(
            chunk_size=8, n_action_steps=4, dim_model=32, n_heads=2, dim_feedforward=64,
            n_encoder_layers=1, n_decoder_layers=1, latent_dim=8,
        )  # fmt: skip
        config = ACTConfig(**common, **{**settings, **overrides})
        policy = ACTPolicy(config)
    else:
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

        settings = dict(
            n_obs_steps=2, horizon=8, n_action_steps=4, down_dims=(16, 32), kernel_size=3,
            n_groups=4, diffusion_step_embed_dim=16, num_inference_steps=3, crop_shape=(84, 84),
            spatial_softmax_num_keypoints=8,
        )  # fmt: skip
        config = DiffusionConfig(**common, **{**settings, **overrides})
        policy = DiffusionPolicy(config)
    policy.save_pretrained(path)
    pre, post = make_pre_post_processors(config, dataset_stats=stats or pusht_stats())
    pre.save_pretrained(path)
    post.save_pretrained(path)
    return path


def reference_policy(path: Path):
    """The saved policy loaded the way LeRobot's own eval loads it: (policy, pre, post)."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    config = PreTrainedConfig.from_pretrained(str(path))
    policy = get_policy_class(config.type).from_pretrained(str(path), config=config)
    policy.eval()
    pre, post = make_pre_post_processors(config, pretrained_path=str(path))
    return policy, pre, post


@pytest.fixture(scope="session")
def saved(tmp_path_factory) -> dict[str, Path]:
    """Saved policy directories by kind: ``act`` and ``diffusion``."""
    root = tmp_path_factory.mktemp("policies")
    return {kind: build_policy(kind, root / kind) for kind in ("act", "diffusion")}
