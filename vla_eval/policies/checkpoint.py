"""The policy of a TinyVLA checkpoint this project's reference trainer saved.

Observations need ``image`` (N, 64, 64, 3) uint8, ``state`` and ``instruction``;
actions are chunks (N, H, D) decoded at the bin centres. torch and the trainer's
model definitions (`trainer.checkpoint`, `trainer.model`) are imported when a policy
is built, never at import; this module never imports the training loop, the data
pipeline or the recipe.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from vla_eval.errors import UsageError


class CheckpointPolicy:
    """A TinyVLA checkpoint behind the `Policy` interface (imports torch when built).

    Observations need ``image`` (N, 64, 64, 3) uint8, ``state`` and ``instruction``;
    returns action chunks (N, H, D) decoded at the bin centres.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        import torch

        from vla_eval.envs.tabletop.text import TextTokenizer
        from vla_eval.trainer.checkpoint import load_policy

        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer, ckpt = load_policy(path)
        recipe = ckpt.get("recipe") or {}
        vocab = recipe.get("text_vocab") if isinstance(recipe, dict) else None
        self.text = TextTokenizer(vocab) if vocab else TextTokenizer()
        self.step = int(ckpt["step"])
        self.action_dim = int(self.model.config.action_dim)
        self.path = Path(path)
        self.name = self.path.stem  # what the episode records call the policy
        self._torch = torch

    def fingerprint(self) -> str:
        """sha256 of the checkpoint file (identifies the policy across runs)."""
        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:16]

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        torch = self._torch
        if "image" not in obs:
            raise UsageError(
                "this checkpoint's policy needs image observations; the environment gives "
                f"only {', '.join(k for k in obs if k != 'env_index')}"
            )
        cfg = self.model.config
        ids = self.text.encode(list(obs["instruction"]), length=cfg.max_text_len)
        state = obs.get("state")
        state_t = None
        if cfg.state_dim:
            if state is None or np.shape(state)[1] != cfg.state_dim:
                raise UsageError(
                    f"the checkpoint expects a {cfg.state_dim}-D state; the environment gives "
                    f"{None if state is None else np.shape(state)[1]}"
                )
            state_t = torch.from_numpy(np.asarray(state, dtype=np.float32))
        return self.model.predict_actions(
            torch.from_numpy(np.ascontiguousarray(obs["image"])),
            torch.from_numpy(ids),
            state_t,
            self.tokenizer,
        )
