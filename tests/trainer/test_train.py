"""The reference trainer: loss falls, stages train what they should, resume, torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from vla_eval.errors import UsageError
from vla_eval.protocol import load_protocol
from vla_eval.trainer.checkpoint import load_checkpoint
from vla_eval.trainer.train import train

SMOKE = Path(__file__).parents[2] / "protocols" / "smoke.toml"


@pytest.fixture(scope="module")
def smoke_config():
    return load_protocol(SMOKE).train


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_short_run_loss_falls_and_writes_everything(tmp_path, smoke_config) -> None:
    cfg = replace(smoke_config, steps=60, eval_every=30, checkpoint_every=30)
    result = train(cfg, out_dir=tmp_path, progress=False)
    rows = metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(60))
    first = sum(r["robot_loss"] for r in rows[:5]) / 5
    last = sum(r["robot_loss"] for r in rows[-5:]) / 5
    assert last < 0.8 * first  # cross-entropy over 256 bins starts near ln(256) = 5.5
    assert {r["stage"] for r in rows} == {"align", "cofinetune", "specialise"}
    assert all(r["grad_norm"] >= 0 for r in rows)
    evals = [r for r in rows if "heldout" in r]
    assert [r["step"] for r in evals] == [29, 59] and set(evals[0]["heldout"]) == {"seen", "unseen"}
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["schema"] == "vla-eval/train/1" and run["steps"] == 60
    ckpt = load_checkpoint(result.checkpoint)  # weights_only=True inside
    assert ckpt["format"] == "vla-eval/ckpt/1" and ckpt["step"] == 60
    assert isinstance(ckpt["recipe"]["text_vocab"], list) and ckpt["recipe"]["text_vocab"]


def test_frozen_parts_do_not_change_in_alignment(smoke_run, smoke_config) -> None:
    """Stage 1 trains projection + action head; the other parts keep their initial weights."""
    from vla_eval.trainer.model import TinyVLA

    aligned = load_checkpoint(smoke_run / "checkpoints" / "step_000001.pt")  # 5% of 24 steps
    assert aligned["stage"] == "align"
    torch.manual_seed(smoke_config.seed)  # the trainer seeds torch before building the model
    initial = TinyVLA(smoke_config.model).state_dict()
    moved = {n: not torch.equal(t, initial[n]) for n, t in aligned["model"].items()}
    for name, changed in moved.items():
        if name.split(".")[0] in ("vision_encoder", "backbone", "lm_head"):
            assert not changed, f"{name} changed during alignment"
    assert any(c for n, c in moved.items() if n.startswith("projection"))
    assert any(c for n, c in moved.items() if n.startswith("action_head"))


@pytest.mark.parametrize("cut", [16, 20])  # inside stage 2, and exactly at its end
def test_resume_gives_the_same_losses(tmp_path, smoke_run, smoke_config, cut) -> None:
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    for p in (run / "checkpoints").glob("*.pt"):
        if int(p.stem.split("_")[1]) > cut:
            p.unlink()
    train(smoke_config, out_dir=run, resume=True, progress=False)
    a, b = metrics(smoke_run), metrics(run)
    assert [r["step"] for r in b] == list(range(smoke_config.steps))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # bit for bit, in one process


def test_refuses_to_overwrite_or_resume_nothing(tmp_path, smoke_run, smoke_config) -> None:
    with pytest.raises(UsageError, match="nothing to resume"):
        train(smoke_config, out_dir=tmp_path / "empty", resume=True, progress=False)
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    with pytest.raises(UsageError, match="already holds a run"):
        train(smoke_config, out_dir=run, progress=False)
    with pytest.raises(UsageError, match="different configuration"):
        train(replace(smoke_config, seed=1), out_dir=run, resume=True, progress=False)


DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, sys, torch
    from dataclasses import replace
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer import setup, train as t
    captured = {{}}
    real = setup.TinyVLA
    class Spy(real):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            captured["model"] = self
    setup.TinyVLA = Spy
    cfg = replace(load_protocol({smoke!r}).train, steps=8, eval_every=0, checkpoint_every=0)
    t.train(cfg, out_dir={out!r}, progress=False)
    flat = torch.cat([p.detach().flatten() for p in captured["model"].parameters()])
    rank = torch.distributed.get_rank()
    open({out!r} + f"/params.{{rank}}", "w").write(hashlib.sha256(flat.numpy().tobytes()).hexdigest())
    """
)


@pytest.mark.slow
def test_torchrun_two_processes_stay_in_sync(tmp_path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(smoke=str(SMOKE), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29517", str(script)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    h0, h1 = (tmp_path / "params.0").read_text(), (tmp_path / "params.1").read_text()
    assert h0 == h1  # gradients were averaged: both processes hold the same weights
    rows = metrics(tmp_path)
    assert len(rows) == 8 and all(isinstance(r["loss"], float) for r in rows)


def test_lora_specialisation_trains_only_adapters(tmp_path, smoke_config) -> None:
    pytest.importorskip("peft")
    cfg = replace(smoke_config, recipe=replace(smoke_config.recipe, stage3="lora"))
    train(cfg, out_dir=tmp_path, progress=False)
    before = load_checkpoint(tmp_path / "checkpoints" / "step_000020.pt")["model"]  # end of stage 2
    after = load_checkpoint(tmp_path / "checkpoints" / "step_000024.pt")
    assert after["model_config"]["lora_rank"] == cfg.recipe.lora_rank
    lora = [n for n in after["model"] if "lora_" in n]
    assert lora and all(n.split(".")[0] == "backbone" for n in lora)
    for name, tensor in before.items():
        base = name.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        key = name if name in after["model"] else base
        assert torch.equal(tensor, after["model"][key]), f"{name} changed in a LoRA stage"
