"""TinyVLA: a vision-language-action model small enough to train on a CPU in minutes.

It has the named parts the recipe freezes and unfreezes stage by stage:
``vision_encoder`` (a small conv net on 64x64 RGB images, FiLM-conditioned on the
instruction as in RT-1 -> a grid of visual features and spatial-softmax keypoints),
``projection`` (visual features -> visual tokens; keypoints and the proprioceptive
state -> one "where" token), ``backbone`` (word embeddings, an instruction summary
for FiLM, and a bidirectional transformer over text tokens, visual tokens, the where
token, H learned action-query tokens and one answer-query token), ``action_head``
(per action query, read beside the where token, logits over the bins of every action
dimension: an action chunk of H steps x D dims) and ``lm_head`` (answer logits for
web-style visual question answering). Every parameter belongs to exactly one part, so
freezing by part is exact. The architecture mirrors a token-predicting VLA (RT-2,
OpenVLA) with parallel decoding of a whole chunk (as in OpenVLA-OFT) in place of
autoregressive decoding, which a model this small does not need. `add_lora` (the
one LoRA helper, for TinyVLA and any model with a ``backbone``) adds peft adapters.
The losses are in `losses`, the configuration in the torch-free `config`. This module
depends on torch, `vla_eval.actions` and `vla_eval.trainer.config` (and peft, only
for LoRA); nothing else in the project may be required to build or run it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import UsageError
from vla_eval.trainer.config import PARTS, TinyVLAConfig

PAD_ID = 0
IGNORE_INDEX = -100  # answer label of a robot example (no VQA answer)


class ModelOutput(NamedTuple):
    """What `TinyVLA.forward` returns.

    Attributes:
        action_logits: (B, H, D, n_bins).
        answer_logits: (B, n_answers).
    """

    action_logits: torch.Tensor
    answer_logits: torch.Tensor


class VisionEncoder(nn.Module):
    """FiLM-conditioned conv net: images and an instruction vector -> visual tokens and keypoints.

    Two coordinate channels (x and y in [-1, 1]) are appended to the image, as in
    CoordConv (Liu et al., 2018): where things are is most of what a tabletop policy
    needs, and a plain conv net learns absolute position only slowly. The instruction
    modulates the middle layers feature-wise (FiLM, Perez et al., 2018, as in RT-1's
    image tokenizer), so the conv net itself can pick out "the red block" rather
    than leave that to attention over coarse tokens. A spatial softmax (Levine et
    al., 2016) over the last 1/8-resolution map turns each channel into an expected
    image position, the keypoints an action can be computed from directly.

    Outputs: grid features (B, (S/16)^2, channels) and keypoints (B, 2 * channels).
    """

    def __init__(self, channels: int, image_size: int, cond_dim: int) -> None:
        super().__init__()
        c = channels
        axis = torch.linspace(-1.0, 1.0, image_size)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"))  # (2, S, S): x, y
        self.register_buffer("coords", grid.unsqueeze(0), persistent=False)
        self.conv1 = nn.Conv2d(5, 32, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(32, 48, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(48, c, 3, stride=2, padding=1)
        self.conv4 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.film_sizes = (48, c)
        self.film = nn.Linear(cond_dim, 2 * sum(self.film_sizes))
        # Sharpness of the spatial softmax, learned (log scale).
        self.log_temperature = nn.Parameter(torch.zeros(1))
        side = image_size // 8
        kaxis = torch.linspace(-1.0, 1.0, side)
        kx, ky = torch.meshgrid(kaxis, kaxis, indexing="xy")
        self.register_buffer(
            "key_xy", torch.stack([kx.flatten(), ky.flatten()], 1), persistent=False
        )

    def forward(
        self, images: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = images
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        # Images arrive channels-last like the world renders them; centre to about [-1, 1].
        x = (x.permute(0, 3, 1, 2) - 0.5) / 0.25
        x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        scale2, shift2, scale3, shift3 = self.film(cond).split(
            [self.film_sizes[0], self.film_sizes[0], self.film_sizes[1], self.film_sizes[1]], -1
        )
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x) * (1 + scale2[:, :, None, None]) + shift2[:, :, None, None])
        x = self.conv3(x) * (1 + scale3[:, :, None, None]) + shift3[:, :, None, None]
        attention = F.softmax(x.flatten(2) * self.log_temperature.exp(), dim=-1)  # (B, C, P)
        keypoints = (attention @ self.key_xy).flatten(1)  # (B, 2C): x, y per channel
        grid = F.relu(self.conv4(F.relu(x)))
        return grid.flatten(2).transpose(1, 2), keypoints


class Projection(nn.Module):
    """Visual features, keypoints and proprioceptive state -> backbone width.

    The grid features become visual tokens (with learned positions); the keypoints
    and the state together become one "where things are" token, which the action
    head also reads directly.
    """

    def __init__(self, config: TinyVLAConfig) -> None:
        super().__init__()
        w = config.width
        self.visual = nn.Linear(config.vision_channels, w)
        self.visual_pos = nn.Parameter(torch.randn(config.vision_tokens, w) * 0.02)
        self.state_dim = config.state_dim
        self.where = nn.Sequential(
            nn.Linear(2 * config.vision_channels + config.state_dim, 2 * w),
            nn.GELU(),
            nn.Linear(2 * w, w),
        )

    def forward(
        self, features: torch.Tensor, keypoints: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        visual = self.visual(features) + self.visual_pos
        where = keypoints if state is None else torch.cat([keypoints, state.float()], dim=-1)
        return visual, self.where(where).unsqueeze(1)


class Block(nn.Module):
    """Pre-norm transformer block; explicit `qkv`/`proj`/`fc1`/`fc2` linears are LoRA targets."""

    def __init__(self, width: int, heads: int, mlp_ratio: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, mlp_ratio * width)
        self.fc2 = nn.Linear(mlp_ratio * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, n, w)))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm2(x)))))


class Backbone(nn.Module):
    """Text embedding, positions and a stack of bidirectional transformer blocks."""

    def __init__(self, config: TinyVLAConfig) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(config.text_vocab_size, config.width, padding_idx=PAD_ID)
        self.pos_emb = nn.Parameter(torch.randn(config.seq_len, config.width) * 0.02)
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, config.mlp_ratio, config.dropout)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)
        # Instruction summary for the vision encoder's FiLM: each word with its
        # position goes through one nonlinearity before pooling, so "red" second and
        # "blue" sixth differ from the reverse (a bag of words would not).
        self.instruction = nn.Linear(config.width, config.width)
        # Normalised, so FiLM sees a unit-scale signal from the first step (the
        # embeddings start at std 0.02, which would leave the images unconditioned).
        self.instruction_norm = nn.LayerNorm(config.width)

    def summarize(self, text_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) padded instruction ids -> (B, width), a mean over the non-padding words."""
        words = self.tok_emb(text_ids) + self.pos_emb[: text_ids.shape[1]]
        keep = (text_ids != PAD_ID).unsqueeze(-1).to(words.dtype)
        pooled = (F.gelu(self.instruction(words)) * keep).sum(1)
        return self.instruction_norm(pooled / keep.sum(1).clamp_min(1.0))

    def forward(self, tokens: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """tokens (B, N, W) already embedded; keep (B, N) bool, False for padding."""
        x = tokens + self.pos_emb[: tokens.shape[1]]
        # (B, 1, 1, N) boolean mask: every position may attend to every non-padding key.
        mask = keep[:, None, None, :]
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


class ActionHead(nn.Module):
    """H learned action queries; an MLP maps each, beside the "where" token, to D x n_bins logits.

    Reading the where token (keypoints and state after the backbone) next to each
    query gives the head a short path from positions to motions, as a plain
    keypoint policy has, while the backbone still mixes in language and vision.
    """

    def __init__(self, config: TinyVLAConfig) -> None:
        super().__init__()
        w = config.width
        self.action_dim, self.n_bins = config.action_dim, config.n_bins
        self.queries = nn.Parameter(torch.randn(config.horizon, w) * 0.02)
        self.hidden = nn.Linear(2 * w, 2 * w)
        self.out = nn.Linear(2 * w, config.action_dim * config.n_bins)

    def forward(self, hidden: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """hidden (B, H, W) action-query outputs, where (B, W) the where token's output."""
        b, h, _ = hidden.shape
        x = torch.cat([hidden, where.unsqueeze(1).expand(-1, h, -1)], dim=-1)
        return self.out(F.gelu(self.hidden(x))).view(b, h, self.action_dim, self.n_bins)


class LanguageHead(nn.Module):
    """One learned answer query and a linear map to answer logits."""

    def __init__(self, config: TinyVLAConfig) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, config.width) * 0.02)
        self.out = nn.Linear(config.width, config.n_answers)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out(hidden)


class TinyVLA(nn.Module):
    """Vision-language-action model with the recipe's five named parts.

    Args:
        config: a `TinyVLAConfig` (or its dict form).

    Example:
        >>> model = TinyVLA(TinyVLAConfig(horizon=2))
        >>> images = torch.zeros(3, 64, 64, 3, dtype=torch.uint8)
        >>> out = model(images, torch.ones(3, 5, dtype=torch.long), torch.zeros(3, 5))
        >>> tuple(out.action_logits.shape), tuple(out.answer_logits.shape)
        ((3, 2, 7, 256), (3, 64))
    """

    def __init__(self, config: TinyVLAConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if config is None:
            config = TinyVLAConfig()
        elif isinstance(config, Mapping):
            config = TinyVLAConfig.from_dict(config)
        lora = (config.lora_rank, config.lora_alpha, config.lora_dropout)
        self.config = dataclasses.replace(config, lora_rank=0)
        self.vision_encoder = VisionEncoder(config.vision_channels, config.image_size, config.width)
        self.projection = Projection(config)
        self.backbone = Backbone(config)
        self.action_head = ActionHead(config)
        self.lm_head = LanguageHead(config)
        self.apply(_init_weights)
        # FiLM and the position-to-motion MLPs keep PyTorch's default (fan-in scaled)
        # init: the small transformer init would damp the language -> vision and the
        # coordinates -> motion paths, the two a policy has to learn first.
        for module in (*self.projection.where, self.action_head.hidden, self.vision_encoder.film):
            if isinstance(module, nn.Linear):
                module.reset_parameters()
        if lora[0]:
            add_lora(self, *lora)

    # --- forward --------------------------------------------------------------

    def forward(
        self, images: torch.Tensor, text_ids: torch.Tensor, state: torch.Tensor | None = None
    ) -> ModelOutput:
        """Action-chunk and answer logits.

        Args:
            images: (B, S, S, 3) uint8 (or float in [0, 1]) RGB, channels last.
            text_ids: (B, L) int instruction/question ids, 0 = PAD, L <= max_text_len.
            state: (B, state_dim) proprioceptive state; required iff state_dim > 0.

        Returns:
            `ModelOutput` with action_logits (B, H, D, n_bins), answer_logits (B, n_answers).
        """
        cfg = self.config
        self._check_inputs(images, text_ids, state)
        b = images.shape[0]
        # Right-pad to max_text_len so every other token keeps a fixed position.
        text_ids = F.pad(text_ids, (0, cfg.max_text_len - text_ids.shape[1]), value=PAD_ID)
        features, keypoints = self.vision_encoder(images, self.backbone.summarize(text_ids))
        visual, where = self.projection(features, keypoints, state)
        text = self.backbone.tok_emb(text_ids)
        parts = [text, visual, where]
        parts += [
            self.action_head.queries.expand(b, -1, -1),
            self.lm_head.query.expand(b, -1, -1),
        ]
        tokens = torch.cat(parts, dim=1)
        keep = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        keep[:, : cfg.max_text_len] = text_ids != PAD_ID
        hidden = self.backbone(tokens, keep)
        action_logits = self.action_head(hidden[:, -cfg.horizon - 1 : -1], where[:, 0])
        answer_logits = self.lm_head(hidden[:, -1])
        return ModelOutput(action_logits, answer_logits)

    @torch.no_grad()
    def predict_bins(
        self, images: torch.Tensor, text_ids: torch.Tensor, state: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Most likely bin per chunk step and dimension, (B, H, D) int64."""
        return self(images, text_ids, state).action_logits.argmax(-1)

    @torch.no_grad()
    def predict_actions(
        self,
        images: torch.Tensor,
        text_ids: torch.Tensor,
        state: torch.Tensor | None = None,
        tokenizer: ActionTokenizer | None = None,
    ) -> np.ndarray:
        """Continuous action chunks, (B, H, D) float64 numpy (for numpy environments).

        The argmax bin of each dimension is decoded to its bin centre by `tokenizer`
        (default: the uniform 256-bin tokenizer over [-1, 1], which needs n_bins=256).
        """
        tok = tokenizer if tokenizer is not None else ActionTokenizer(n_bins=self.config.n_bins)
        if tok.n_bins != self.config.n_bins:
            raise UsageError(
                f"tokenizer has {tok.n_bins} bins but the model predicts {self.config.n_bins}"
            )
        was_training = self.training
        self.eval()
        try:
            bins = self.predict_bins(images, text_ids, state)
        finally:
            self.train(was_training)
        return tok.decode(bins.cpu().numpy())

    # --- parts ----------------------------------------------------------------

    def part_parameters(self) -> dict[str, int]:
        """Number of parameters in each named part."""
        return {name: sum(p.numel() for p in getattr(self, name).parameters()) for name in PARTS}

    # --- internals ------------------------------------------------------------

    def _check_inputs(
        self, images: torch.Tensor, text_ids: torch.Tensor, state: torch.Tensor | None
    ) -> None:
        cfg = self.config
        s = cfg.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (s, s, 3):
            raise UsageError(f"images must have shape (B, {s}, {s}, 3), got {tuple(images.shape)}")
        if text_ids.ndim != 2 or text_ids.shape[0] != images.shape[0]:
            raise UsageError(f"text_ids must have shape (B, L), got {tuple(text_ids.shape)}")
        if text_ids.shape[1] > cfg.max_text_len:
            raise UsageError(
                f"instructions are {text_ids.shape[1]} tokens, longer than max_text_len {cfg.max_text_len}"
            )
        if text_ids.numel() and (
            int(text_ids.min()) < 0 or int(text_ids.max()) >= cfg.text_vocab_size
        ):
            raise UsageError(
                f"text ids must lie in 0..{cfg.text_vocab_size - 1} (the model's text vocabulary)"
            )
        if cfg.state_dim and (
            state is None or tuple(state.shape) != (images.shape[0], cfg.state_dim)
        ):
            got = None if state is None else tuple(state.shape)
            raise UsageError(f"state must have shape (B, {cfg.state_dim}), got {got}")
        if not cfg.state_dim and state is not None:
            raise UsageError("this model was built with state_dim=0 and takes no state")


def _init_weights(module: nn.Module) -> None:
    # Small-normal init as in GPT-2 / nanoGPT: keeps a deep-ish tiny model stable at LR 1e-3.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


# --- LoRA -----------------------------------------------------------------------


def add_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0) -> None:
    """Inject LoRA adapters (peft) into every linear layer of ``model.backbone``.

    The one LoRA helper, for TinyVLA and any other model with a ``backbone`` part. The
    adapters start as a zero update (peft initialises B to 0), so the model's outputs
    are unchanged until they train. A TinyVLA records the rank in its config so that a
    checkpoint rebuilds the same modules. Needs the optional extra ``lora``.

    Raises:
        UsageError: the model already has adapters, the rank is not an integer >= 1,
            peft is missing, or there is no backbone with linear layers.
    """
    if has_lora(model):
        raise UsageError("this model already has LoRA adapters")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise UsageError(f"LoRA rank must be an integer >= 1, got {rank!r}")
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise UsageError(
            "LoRA needs the optional dependency peft: pip install 'vla-eval[lora]'"
        ) from None
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise UsageError("LoRA needs a model with a 'backbone' part")
    targets = sorted(
        {n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)}
    )
    if not targets:
        raise UsageError("the backbone has no linear layers to adapt with LoRA")
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, bias="none"
    )
    inject_adapter_in_model(config, backbone)
    if isinstance(model, TinyVLA):
        model.config = dataclasses.replace(
            model.config, lora_rank=rank, lora_alpha=float(alpha), lora_dropout=float(dropout)
        )


def has_lora(model: nn.Module) -> bool:
    """Whether any parameter of `model` belongs to a LoRA adapter."""
    return any("lora_" in n for n, _ in model.named_parameters())
