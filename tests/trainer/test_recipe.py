"""The recipe: LR schedule shape, stages, what each stage trains, optimizer helpers."""

from __future__ import annotations

import io
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.errors import UsageError
from vla_eval.trainer import optim as O
from vla_eval.trainer import recipe as R
from vla_eval.trainer import schedule as S
from vla_eval.trainer.config import TinyVLAConfig
from vla_eval.trainer.losses import action_loss, web_loss
from vla_eval.trainer.model import PARTS, TinyVLA

SMALL = TinyVLAConfig(
    text_vocab_size=50, max_text_len=6, state_dim=3, horizon=2, n_bins=16, n_answers=5,
    width=32, depth=1, heads=2, mlp_ratio=2, vision_channels=16,
)  # fmt: skip


# --- schedule ---------------------------------------------------------------------------


def test_schedule_shape_for_1000_steps():
    base = 1e-3
    lrs = [S.cosine_lr(s, 1000, base) for s in range(1000)]
    w = 30  # 3% of 1000
    # warm-up: base * (s + 1) / (w + 1), written out independently
    assert lrs[:w] == pytest.approx([base * (s + 1) / 31 for s in range(w)])
    assert lrs[0] == pytest.approx(base / 31) and lrs[0] > 0
    assert lrs[w] == pytest.approx(base)
    # cosine: min + (base - min) * (1 + cos(pi * k / K)) / 2 with K = 969, min = 0.1 base
    k = 500
    assert lrs[w + k] == pytest.approx(1e-4 + 9e-4 * 0.5 * (1 + math.cos(math.pi * k / 969)))
    assert lrs[-1] == pytest.approx(1e-4)
    assert all(b >= a for a, b in itertools.pairwise(lrs[: w + 1]))
    assert all(b <= a for a, b in itertools.pairwise(lrs[w:]))
    assert min(lrs) > 0 and max(lrs) == pytest.approx(base)
    # a scheduler stepped once past the end keeps the final LR
    assert S.cosine_lr(1000, 1000, base) == pytest.approx(1e-4)
    assert S.cosine_lr(5000, 1000, base) == pytest.approx(1e-4)


def test_short_stages_do_not_divide_by_zero():
    assert S.cosine_lr(0, 1, 1.0) == 1.0  # one step: no room to warm up
    assert [S.cosine_lr(s, 2, 1.0, warmup_frac=0.9) for s in range(2)] == [0.5, 1.0]
    assert [S.cosine_lr(s, 3, 1.0, warmup_frac=0.99) for s in range(3)] == pytest.approx(
        [1 / 3, 2 / 3, 1.0]
    )
    assert [S.cosine_lr(s, 2, 1.0, warmup_frac=0.0, min_lr_frac=0.2) for s in range(2)] == [
        1.0,
        0.2,
    ]


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(1, 3000),
    warmup=st.floats(0, 0.99),
    floor=st.floats(1e-3, 1.0),
)
def test_schedule_properties(total, warmup, floor):
    lrs = [S.cosine_lr(s, total, 2.0, warmup, floor) for s in range(total)]
    assert all(0 < lr <= 2.0 + 1e-12 for lr in lrs)
    assert max(lrs) == pytest.approx(2.0)  # the peak is always reached
    peak = lrs.index(max(lrs))
    assert all(b >= a for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert all(b <= a + 1e-15 for a, b in itertools.pairwise(lrs[peak:]))
    if total - peak > 1:
        assert lrs[-1] == pytest.approx(2.0 * floor)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total": 0},
        {"base_lr": 0.0},
        {"base_lr": float("nan")},
        {"warmup_frac": 1.0},
        {"warmup_frac": -0.1},
        {"min_lr_frac": 0.0},
        {"step": -1},
    ],
)
def test_schedule_bad_input(kwargs):
    args = {"step": 0, "total": 10, "base_lr": 1e-3} | kwargs
    with pytest.raises(UsageError):
        S.cosine_lr(**args)


def test_lambda_scheduler_follows_cosine_lr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=2e-5)
    sched = S.build_scheduler(opt, 50, warmup_frac=0.1)
    seen = []
    for _ in range(50):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([S.cosine_lr(s, 50, 2e-5, 0.1) for s in range(50)])
    # its state is plain data: loads with weights_only
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True)["last_epoch"] == 50


# --- stages ------------------------------------------------------------------------------


def test_three_stage_matches_the_recipe():
    r = R.three_stage()
    align, cofine, special = r.stages
    assert [s.lr for s in r.stages] == [1e-3, 2e-5, 1e-5]
    assert (
        align.share <= 0.05
        and cofine.share == pytest.approx(0.80)
        and special.share == pytest.approx(0.15)
    )
    assert set(align.trainable) == {"projection", "action_head"}
    assert set(cofine.trainable) == set(PARTS) and cofine.web_ratio > 0
    assert set(special.trainable) == set(PARTS) and special.web_ratio == 0
    assert all(s.weight_decay == 0.01 and s.warmup_frac == 0.03 for s in r.stages)
    assert r.grad_clip == 1.0
    assert set(R.three_stage("frozen_backbone").stages[2].trainable) == set(PARTS) - {"backbone"}
    lora = R.three_stage("lora").stages[2]
    assert lora.lora and lora.trainable == ()
    base = R.one_stage()
    assert len(base.stages) == 1 and set(base.stages[0].trainable) == set(PARTS)


def test_stage_steps():
    r = R.three_stage()
    assert r.stage_steps(1000) == (50, 800, 150)
    assert r.stage_steps(3) == (1, 1, 1)
    assert sum(r.stage_steps(77)) == 77
    assert r.stage_at(0, 1000) == (0, 0)
    assert r.stage_at(50, 1000) == (1, 0)
    assert r.stage_at(999, 1000) == (2, 149)
    with pytest.raises(UsageError):
        r.stage_steps(2)


@settings(max_examples=50, deadline=None)
@given(total=st.integers(3, 100000))
def test_stage_steps_sum_and_shares(total):
    steps = R.three_stage().stage_steps(total)
    assert sum(steps) == total and min(steps) >= 1
    for n, s in zip(steps, (0.05, 0.80, 0.15), strict=True):
        assert abs(n - s * total) <= 2


def test_recipe_round_trip_and_unknown_keys():
    r = R.three_stage("lora", grad_accum=4)
    d = r.to_dict()
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    assert R.Recipe.from_dict(torch.load(buf, weights_only=True)) == r
    with pytest.raises(UsageError, match="lr_peak"):
        R.Recipe.from_dict(d | {"lr_peak": 1})
    bad = d | {"stages": [d["stages"][0] | {"frozen": True}]}
    with pytest.raises(UsageError, match="frozen"):
        R.Recipe.from_dict(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"trainable": ("vision",)},
        {"share": 0.0},
        {"lr": -1.0},
        {"trainable": ()},
        {"lora": True},
        {"web_ratio": 1.0},
        {"min_lr_frac": 0.0},
    ],
)
def test_bad_stage(kwargs):
    args = {"name": "s", "share": 1.0, "lr": 1e-3, "trainable": PARTS} | kwargs
    with pytest.raises(UsageError):
        R.Stage(**args)


def test_bad_recipe():
    s = R.Stage("a", 0.5, 1e-3, PARTS)
    with pytest.raises(UsageError, match="sum"):
        R.Recipe("x", (s,))
    with pytest.raises(UsageError):
        R.three_stage("half")
    with pytest.raises(UsageError):
        R.one_stage(grad_accum=0)


# --- freezing ------------------------------------------------------------------------------


def _batch(b: int = 4):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 64, 64, 3), dtype=torch.uint8, generator=g)
    text = torch.randint(1, 50, (b, 6), generator=g)
    state = torch.randn(b, 3, generator=g)
    bins = torch.randint(0, 16, (b, 2, 7), generator=g)
    answers = torch.randint(0, 5, (b,), generator=g)
    return images, text, state, bins, answers


def _train_one_step(model: TinyVLA, stage: R.Stage) -> dict[str, torch.Tensor]:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = O.build_optimizer(model, stage)
    images, text, state, bins, answers = _batch()
    out = model(images, text, state)
    loss = action_loss(out.action_logits, bins) + web_loss(out.answer_logits, answers)
    loss.backward()
    O.optimizer_step(model, opt, None)
    return before


def _changed(model: TinyVLA, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}


@pytest.mark.parametrize(
    ("recipe", "index", "trains"),
    [
        (R.three_stage(), 0, {"projection", "action_head"}),
        (R.three_stage(), 1, set(PARTS)),
        (R.three_stage("full"), 2, set(PARTS)),
        (R.three_stage("frozen_backbone"), 2, set(PARTS) - {"backbone"}),
        (R.one_stage(), 0, set(PARTS)),
    ],
    ids=["align", "cofinetune", "special-full", "special-frozen-backbone", "one-stage"],
)
def test_each_stage_trains_exactly_its_parts(recipe, index, trains):
    torch.manual_seed(0)
    model = TinyVLA(SMALL)
    stage = recipe.stages[index]
    counts = O.prepare_stage(model, stage, recipe)
    sizes = model.part_parameters()
    assert counts == {p: (sizes[p] if p in trains else 0) for p in PARTS}
    opt = O.build_optimizer(model, stage)
    handed = {id(p) for g in opt.param_groups for p in g["params"]}
    assert handed == {id(p) for p in model.parameters() if p.requires_grad}
    before = _train_one_step(model, stage)
    changed_parts = {n.split(".", 1)[0] for n in _changed(model, before)}
    assert changed_parts == trains
    for name, p in model.named_parameters():
        if name.split(".", 1)[0] not in trains:
            assert torch.equal(p.detach(), before[name]), name


def test_lora_stage_trains_only_adapters():
    torch.manual_seed(0)
    model = TinyVLA(SMALL)
    images, text, state, _, _ = _batch()
    with torch.no_grad():
        reference = model(images, text, state).action_logits
    recipe = R.three_stage("lora", lora_rank=4)
    counts = O.prepare_stage(model, recipe.stages[2], recipe)
    assert model.config.lora_rank == 4
    lora_names = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert lora_names and all(n.startswith("backbone.") for n in lora_names)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == lora_names
    assert counts["backbone"] == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    # LoRA starts as a zero update: outputs unchanged
    with torch.no_grad():
        assert torch.allclose(model(images, text, state).action_logits, reference, atol=1e-6)
    stage = R.Stage("lora", 1.0, 1e-2, (), lora=True)
    before = _train_one_step(model, stage)
    changed = _changed(model, before)
    assert changed and changed <= lora_names
    assert any("lora_B" in n for n in changed)


def test_apply_freezing_needs_adapters_and_named_parts():
    model = TinyVLA(SMALL)
    with pytest.raises(UsageError, match="no"):
        O.apply_freezing(model, R.Stage("lora", 1.0, 1e-3, (), lora=True))

    class Loose(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for part in PARTS:
                setattr(self, part, torch.nn.Linear(2, 2))
            self.extra = torch.nn.Parameter(torch.zeros(1))

    with pytest.raises(UsageError, match="outside"):
        O.apply_freezing(Loose(), R.one_stage().stages[0])
    with pytest.raises(UsageError, match="no part"):
        O.apply_freezing(torch.nn.Linear(2, 2), R.one_stage().stages[0])


def test_generic_model_gets_peft_lora():
    class Generic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_encoder = torch.nn.Linear(4, 4)
            self.projection = torch.nn.Linear(4, 4)
            self.backbone = torch.nn.Sequential(
                torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)
            )
            self.action_head = torch.nn.Linear(4, 2)
            self.lm_head = torch.nn.Linear(4, 2)

    model = Generic()
    O.prepare_stage(model, R.three_stage("lora").stages[2])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n and n.startswith("backbone.") for n in trainable)


def test_weight_decay_groups():
    model = TinyVLA(SMALL)
    stage = R.three_stage().stages[1]
    O.prepare_stage(model, stage)
    opt = O.build_optimizer(model, stage)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(p.ndim >= 2 for p in decay["params"])
    for p in no_decay["params"]:
        name = names[id(p)]
        assert p.ndim == 1 or "emb" in name or "pos" in name, name
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    assert opt.param_groups[0]["lr"] == 2e-5


# --- gradient helpers --------------------------------------------------------------------------


def test_clip_gradients_by_hand():
    a = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([3.0, 4.0])  # norm 5
    assert O.clip_gradients([a], 1.0) == pytest.approx(5.0)
    assert a.grad.tolist() == pytest.approx([0.6, 0.8])
    b = torch.nn.Parameter(torch.zeros(2))
    b.grad = torch.tensor([0.3, 0.4])  # norm 0.5 stays
    assert O.clip_gradients([b], 1.0) == pytest.approx(0.5)
    assert b.grad.tolist() == pytest.approx([0.3, 0.4])


def test_optimizer_step_skips_non_finite_gradients():
    lin = torch.nn.Linear(2, 1)
    before = [p.detach().clone() for p in lin.parameters()]
    opt = torch.optim.AdamW(lin.parameters(), lr=0.1)
    sched = S.build_scheduler(opt, 10)
    lin(torch.tensor([[float("nan"), 1.0]])).sum().backward()
    norm = O.optimizer_step(lin, opt, sched)
    assert not math.isfinite(norm)
    assert all(torch.equal(p, q) for p, q in zip(lin.parameters(), before, strict=True))
    assert sched.last_epoch == 1


def test_gradient_accumulation_equals_big_batch():
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    big = torch.nn.Linear(3, 1)
    small = torch.nn.Linear(3, 1)
    small.load_state_dict(big.state_dict())
    torch.nn.functional.mse_loss(big(x), y).backward()
    accum = 4
    for xb, yb in zip(x.split(2), y.split(2), strict=True):
        (torch.nn.functional.mse_loss(small(xb), yb) / accum).backward()
    for p, q in zip(big.parameters(), small.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6)
