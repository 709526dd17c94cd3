"""TinyVLA: shapes, parts, input handling, losses, and that it can learn."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import UsageError
from vla_eval.trainer.config import TinyVLAConfig
from vla_eval.trainer.losses import action_loss, web_loss
from vla_eval.trainer.model import IGNORE_INDEX, PARTS, TinyVLA, add_lora


def _inputs(cfg: TinyVLAConfig, b: int = 3, text_len: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (b, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8, generator=g
    )
    text = torch.randint(1, cfg.text_vocab_size, (b, text_len), generator=g)
    state = torch.randn(b, cfg.state_dim, generator=g) if cfg.state_dim else None
    return images, text, state


def test_shapes_and_parameter_budget():
    cfg = TinyVLAConfig()
    model = TinyVLA(cfg)
    out = model(*_inputs(cfg, b=3))
    assert out.action_logits.shape == (3, cfg.horizon, 7, 256)
    assert out.answer_logits.shape == (3, cfg.n_answers)
    parts = model.part_parameters()
    assert set(parts) == set(PARTS) and all(n > 0 for n in parts.values())
    # every parameter belongs to exactly one named part
    assert sum(parts.values()) == sum(p.numel() for p in model.parameters())
    assert 300_000 <= sum(parts.values()) <= 1_000_000


def test_model_without_state_and_other_sizes():
    cfg = TinyVLAConfig(
        state_dim=0, horizon=8, n_bins=32, action_dim=3, image_size=32, width=64, heads=2
    )
    model = TinyVLA(cfg)
    images, text, _ = _inputs(cfg, b=2)
    assert model(images, text).action_logits.shape == (2, 8, 3, 32)
    with pytest.raises(UsageError, match="no state"):
        model(images, text, torch.zeros(2, 4))


def test_uint8_images_are_normalised_inside():
    cfg = TinyVLAConfig()
    model = TinyVLA(cfg).eval()
    images, text, state = _inputs(cfg)
    as_float = images.float() / 255.0
    assert torch.allclose(
        model(images, text, state).action_logits,
        model(as_float, text, state).action_logits,
        atol=1e-5,
    )


def test_padding_does_not_change_outputs():
    cfg = TinyVLAConfig()
    model = TinyVLA(cfg).eval()
    images, text, state = _inputs(cfg, text_len=5)
    padded = torch.cat([text, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    a = model(images, text, state)
    b = model(images, padded, state)
    assert torch.allclose(a.action_logits, b.action_logits, atol=1e-5)
    assert torch.allclose(a.answer_logits, b.answer_logits, atol=1e-5)
    # ... while the instruction itself does matter
    other = text.clone()
    other[:, 0] = (other[:, 0] % (cfg.text_vocab_size - 1)) + 1
    other[:, 0] = torch.where(other[:, 0] == text[:, 0], other[:, 0] % 7 + 1, other[:, 0])
    assert not torch.allclose(model(images, other, state).action_logits, a.action_logits)


@pytest.mark.parametrize(
    ("images", "text", "state", "match"),
    [
        ((2, 32, 32, 3), (2, 4), (2, 5), "images"),
        ((2, 64, 64, 3), (2, 40), (2, 5), "max_text_len"),
        ((2, 64, 64, 3), (3, 4), (2, 5), "text_ids"),
        ((2, 64, 64, 3), (2, 4), None, "state"),
        ((2, 64, 64, 3), (2, 4), (2, 4), "state"),
    ],
)
def test_bad_inputs(images, text, state, match):
    model = TinyVLA()
    with pytest.raises(UsageError, match=match):
        model(
            torch.zeros(images, dtype=torch.uint8),
            torch.ones(text, dtype=torch.long),
            None if state is None else torch.zeros(state),
        )
    with pytest.raises(UsageError, match="vocabulary"):
        model(
            torch.zeros(1, 64, 64, 3, dtype=torch.uint8),
            torch.full((1, 3), 10_000),
            torch.zeros(1, 8),
        )


def test_config_round_trip_and_errors():
    cfg = TinyVLAConfig(horizon=8, width=64)
    d = cfg.to_dict()
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    assert TinyVLAConfig.from_dict(torch.load(buf, weights_only=True)) == cfg
    with pytest.raises(UsageError, match="chunk"):
        TinyVLAConfig.from_dict(d | {"chunk": 4})
    for bad in (
        {"width": 90, "heads": 4},
        {"image_size": 60},
        {"horizon": 0},
        {"n_bins": 1},
        {"dropout": 1.0},
    ):
        with pytest.raises(UsageError):
            TinyVLAConfig(**bad)


def test_lora_config_rebuilds_the_same_modules():
    torch.manual_seed(0)
    model = TinyVLA(TinyVLAConfig(width=64, heads=2))
    add_lora(model, rank=4, alpha=8)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_()  # make the adapters matter
    rebuilt = TinyVLA(model.config.to_dict())
    rebuilt.load_state_dict(model.state_dict())
    inputs = _inputs(model.config)
    assert torch.allclose(
        model.eval()(*inputs).action_logits, rebuilt.eval()(*inputs).action_logits
    )
    with pytest.raises(UsageError, match="already"):
        add_lora(model)


# --- losses ---------------------------------------------------------------------------


def _manual_ce(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """-log softmax at the target, written out in numpy."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=-1))
    picked = np.take_along_axis(shifted, target[..., None], axis=-1)[..., 0]
    return log_z - picked


def test_action_loss_by_hand():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 4, 5, generator=g)
    target = torch.randint(0, 5, (2, 3, 4), generator=g)
    ce = _manual_ce(logits.numpy().astype(np.float64), target.numpy())
    assert action_loss(logits, target).item() == pytest.approx(ce.mean(), rel=1e-5)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    m = mask.numpy()[..., None].repeat(4, axis=-1)
    assert action_loss(logits, target, mask).item() == pytest.approx(ce[m].mean(), rel=1e-5)
    w = torch.tensor([1.0, 3.0])
    wm = m * np.array([1.0, 3.0])[:, None, None]
    expected = (ce * wm).sum() / wm.sum()
    assert action_loss(logits, target, mask, w).item() == pytest.approx(expected, rel=1e-5)
    nothing = torch.zeros(2, 3, dtype=torch.bool)
    assert action_loss(logits, target, nothing).item() == 0.0
    with pytest.raises(UsageError):
        action_loss(logits, target[:, :2])


def test_action_loss_regression_term_by_hand():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 4, 8, generator=g)
    target = torch.randint(0, 8, (2, 3, 4), generator=g)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    x = logits.numpy().astype(np.float64)
    probs = np.exp(x - x.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected_bin = (probs * np.arange(8)).sum(-1)
    # squared error of the expected bin, in action units for 8 bins over [-1, 1]
    sq = ((expected_bin - target.numpy()) * 2.0 / 8) ** 2
    per_entry = _manual_ce(x, target.numpy()) + 2.5 * sq
    m = mask.numpy()[..., None].repeat(4, axis=-1)
    got = action_loss(logits, target, mask, regression_weight=2.5).item()
    assert got == pytest.approx(per_entry[m].mean(), rel=1e-5)
    # a confident prediction of the right bin has almost no regression error
    sharp = torch.nn.functional.one_hot(target, 8).float() * 50.0
    assert action_loss(sharp, target, regression_weight=1.0).item() < 1e-6


def test_web_loss_ignores_robot_rows():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 6, generator=g)
    answers = torch.tensor([2, IGNORE_INDEX, 5, IGNORE_INDEX])
    ce = _manual_ce(logits.numpy().astype(np.float64), np.array([2, 0, 5, 0]))
    assert web_loss(logits, answers).item() == pytest.approx(ce[[0, 2]].mean(), rel=1e-5)
    assert web_loss(logits, torch.full((4,), IGNORE_INDEX)).item() == 0.0


# --- prediction and learning ----------------------------------------------------------------


def test_predict_actions_decodes_bins():
    cfg = TinyVLAConfig(n_bins=16, horizon=2)
    model = TinyVLA(cfg).train()
    inputs = _inputs(cfg)
    tok = ActionTokenizer(n_bins=16)
    actions = model.predict_actions(*inputs, tokenizer=tok)
    assert isinstance(actions, np.ndarray) and actions.shape == (3, 2, 7)
    assert np.isin(actions, tok.bin_centers).all()
    assert model.training  # mode restored
    with pytest.raises(UsageError, match="bins"):
        model.predict_actions(*inputs, tokenizer=ActionTokenizer())


@pytest.mark.slow
def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    cfg = TinyVLAConfig(n_bins=64, horizon=2)
    model = TinyVLA(cfg)
    images, text, state = _inputs(cfg, b=8, seed=3)
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, 64, (8, 2, 7), generator=g)
    answers = torch.randint(0, cfg.n_answers, (8,), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        out = model(images, text, state)
        loss = action_loss(out.action_logits, target) + web_loss(out.answer_logits, answers)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # starts near 2 * ln(64) = 8.3 (uniform guesses) and must fall a long way
    assert losses[0] == pytest.approx(np.log(64) + np.log(cfg.n_answers), abs=0.5)
    assert losses[-1] < 0.25 * losses[0]
    acc = (model.predict_bins(images, text, state) == target).float().mean().item()
    assert acc > 0.9
