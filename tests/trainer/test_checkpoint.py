"""Checkpoints: the DESIGN.md format, atomic save, safe load, refusal of pickles, RNG state."""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import DataError, UsageError
from vla_eval.trainer import checkpoint as C
from vla_eval.trainer import optim as O
from vla_eval.trainer import recipe as R
from vla_eval.trainer import schedule as S
from vla_eval.trainer.config import TinyVLAConfig
from vla_eval.trainer.model import TinyVLA

SMALL = TinyVLAConfig(
    text_vocab_size=50, max_text_len=6, state_dim=3, horizon=2, n_bins=16, n_answers=5,
    width=32, depth=1, heads=2, mlp_ratio=2, vision_channels=16,
)  # fmt: skip


def _trained_setup():
    torch.manual_seed(0)
    model = TinyVLA(SMALL)
    recipe = R.three_stage()
    stage = recipe.stages[0]
    O.prepare_stage(model, stage, recipe)
    opt = O.build_optimizer(model, stage)
    sched = S.build_scheduler(opt, 20)
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    out = model(images, torch.ones(2, 3, dtype=torch.long), torch.zeros(2, 3))
    out.action_logits.sum().backward()
    O.optimizer_step(model, opt, sched)
    tok = ActionTokenizer.fit(np.random.default_rng(0).normal(size=(100, 7)), n_bins=16)
    return model, opt, sched, recipe, tok


def test_round_trip_matches_design(tmp_path):
    model, opt, sched, recipe, tok = _trained_setup()
    path = C.save_checkpoint(
        tmp_path / "run" / "step-1.pt",
        model=model, tokenizer=tok, step=1, stage="align",
        optimizer=opt, scheduler=sched, recipe=recipe,
    )  # fmt: skip
    # the raw file is readable by plain torch with weights_only=True
    raw = torch.load(path, weights_only=True)
    assert set(raw) == set(C.REQUIRED_KEYS)
    assert raw["format"] == "vla-eval/ckpt/1"
    assert raw["step"] == 1 and raw["stage"] == "align"
    assert raw["model_config"] == SMALL.to_dict()
    assert raw["tokenizer"]["n_bins"] == 16 and len(raw["tokenizer"]["norm_low"]) == 7
    # no temporary files left behind
    assert [p.name for p in path.parent.iterdir()] == ["step-1.pt"]

    ckpt = C.load_checkpoint(path)
    rebuilt, tok2, _ = C.load_policy(path)
    assert not rebuilt.training and tok2 == tok
    for (n1, p1), (n2, p2) in zip(
        model.state_dict().items(), rebuilt.state_dict().items(), strict=True
    ):
        assert n1 == n2 and torch.equal(p1, p2)
    assert R.Recipe.from_dict(ckpt["recipe"]) == recipe

    # optimizer and scheduler state resume exactly (after re-applying the saved stage)
    O.prepare_stage(rebuilt, recipe.stages[0], recipe)
    opt2 = O.build_optimizer(rebuilt, recipe.stages[0])
    sched2 = S.build_scheduler(opt2, 20)
    assert C.restore_training_state(ckpt, opt2, sched2) == 1
    assert sched2.last_epoch == sched.last_epoch
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    for _ in range(3):  # the two continue identically
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    state1, state2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(state1[k]["exp_avg"], state2[k]["exp_avg"]) for k in state1)


def test_lora_checkpoint_rebuilds(tmp_path):
    model = TinyVLA(SMALL)
    O.prepare_stage(model, R.three_stage("lora").stages[2])
    path = C.save_checkpoint(
        tmp_path / "c.pt", model=model, tokenizer=ActionTokenizer(n_bins=16), step=0, stage=2
    )
    rebuilt, _, _ = C.load_policy(path)
    assert rebuilt.config.lora_rank == model.config.lora_rank > 0
    assert set(rebuilt.state_dict()) == set(model.state_dict())


class _Payload:
    """An object whose unpickling would create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    raw = tmp_path / "evil.pkl"
    with open(raw, "wb") as fh:
        pickle.dump({"format": "vla-eval/ckpt/1", "x": _Payload(marker)}, fh)
    zipped = tmp_path / "evil.pt"
    torch.save({"format": "vla-eval/ckpt/1", "model": {}, "x": _Payload(marker)}, zipped)
    assert not marker.exists()
    for path in (raw, zipped):
        with pytest.raises(UsageError, match="refusing to load") as info:
            C.load_checkpoint(path)
        assert "weights_only=False" not in str(info.value)  # never advise the unsafe path
        assert not marker.exists()
    # sanity: the payload is real (plain pickle would have run it)
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


def test_truncated_missing_and_wrong_files(tmp_path):
    model, _, _, _, tok = _trained_setup()
    good = C.save_checkpoint(
        tmp_path / "good.pt", model=model, tokenizer=tok, step=3, stage="align"
    )
    data = good.read_bytes()
    for name, content in [
        ("half.pt", data[: len(data) // 2]),
        ("head.pt", data[:100]),
        ("noise.pt", os.urandom(500)),
    ]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UsageError, match=r"truncated|corrupted|refusing"):
            C.load_checkpoint(tmp_path / name)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(UsageError, match="empty"):
        C.load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(UsageError, match="not found"):
        C.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(UsageError, match="not a file"):
        C.load_checkpoint(tmp_path)


def test_wrong_format_version_and_keys(tmp_path):
    torch.save({"format": "vla-eval/ckpt/0", "model": {}}, tmp_path / "old.pt")
    with pytest.raises(DataError, match="vla-eval/ckpt/0"):
        C.load_checkpoint(tmp_path / "old.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a vla-eval checkpoint"):
        C.load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": "vla-eval/ckpt/1", "model": {}}, tmp_path / "partial.pt")
    with pytest.raises(DataError, match="lacks"):
        C.load_checkpoint(tmp_path / "partial.pt")


def test_weights_that_do_not_fit_the_config(tmp_path):
    model = TinyVLA(SMALL)
    path = C.save_checkpoint(
        tmp_path / "c.pt",
        model=model,
        tokenizer=ActionTokenizer(n_bins=16),
        step=0,
        stage=0,
        model_config=SMALL.to_dict() | {"width": 64},
    )
    with pytest.raises(DataError, match="do not fit"):
        C.load_policy(path)


def test_crash_during_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, _, _, _, tok = _trained_setup()
    path = C.save_checkpoint(tmp_path / "c.pt", model=model, tokenizer=tok, step=1, stage="align")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(C.torch, "save", crash)
    with pytest.raises(OSError):
        C.save_checkpoint(path, model=model, tokenizer=tok, step=2, stage="align")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert zipfile.is_zipfile(path)


def test_rng_state_round_trip(tmp_path):
    gen_np = np.random.default_rng(123)
    gen_torch = torch.Generator().manual_seed(9)
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002 - the legacy global state is captured too
    torch.manual_seed(3)
    state = C.capture_rng(gen_np, gen_torch)
    torch.save(state, tmp_path / "rng.pt")
    expected = (
        random.random(), np.random.random(), torch.rand(1).item(),  # noqa: NPY002
        gen_np.random(), torch.rand(1, generator=gen_torch).item(),
    )  # fmt: skip
    # scramble everything, then restore from the weights_only load
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    torch.manual_seed(99)
    gen_np2 = np.random.default_rng(0)
    gen_torch2 = torch.Generator().manual_seed(0)
    C.restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True), gen_np2, gen_torch2)
    got = (
        random.random(), np.random.random(), torch.rand(1).item(),  # noqa: NPY002
        gen_np2.random(), torch.rand(1, generator=gen_torch2).item(),
    )  # fmt: skip
    assert got == expected
    with pytest.raises(DataError):
        C.restore_rng({"python": "not json"})
