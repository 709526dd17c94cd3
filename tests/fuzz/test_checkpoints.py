"""Hostile checkpoints and datasets for `offline` and `online`: refused before use, never run.

A small valid checkpoint is written once; each case damages one field (the wrong type for
`step` or `recipe.text_vocab`, NaN weights, a declared width of 10^7, a pickle payload) and
must give one line and exit 2. The cases that could allocate or execute something run in a
fresh interpreter under an address-space limit; the rest run in-process.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fuzz.conftest import check_refused, run_subprocess
from vla_eval.actions import ActionTokenizer
from vla_eval.trainer import checkpoint as C
from vla_eval.trainer.config import TinyVLAConfig
from vla_eval.trainer.model import TinyVLA

SMALL = TinyVLAConfig(
    text_vocab_size=50, max_text_len=6, state_dim=3, horizon=2, n_bins=16, n_answers=5,
    width=32, depth=1, heads=2, mlp_ratio=2, vision_channels=16,
)  # fmt: skip


class _Payload:
    """Unpickling this creates the marker file: proof that a payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    C.save_checkpoint(
        path, model=TinyVLA(SMALL), tokenizer=ActionTokenizer(n_bins=16), step=3, stage=0,
        recipe={"text_vocab": ["pick", "up"]},
    )  # fmt: skip
    return torch.load(path, weights_only=True)


def _write(path: Path, ckpt: dict) -> Path:
    torch.save(ckpt, path)
    return path


def _damaged(good: dict, case: str, tmp_path: Path) -> Path:
    ckpt = {**good, "model": dict(good["model"]), "recipe": dict(good["recipe"])}
    if case == "step-string":
        ckpt["step"] = "7"
    elif case == "step-negative":
        ckpt["step"] = -3
    elif case == "step-float":
        ckpt["step"] = 7.5
    elif case == "text-vocab-int":
        ckpt["recipe"]["text_vocab"] = 5
    elif case == "text-vocab-numbers":
        ckpt["recipe"]["text_vocab"] = [1, 2, 3]
    elif case == "recipe-list":
        ckpt["recipe"] = [1, 2]
    elif case == "nan-weight":
        key = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
        ckpt["model"][key] = torch.full_like(ckpt["model"][key], float("nan"))
    elif case == "inf-weight":
        key = [k for k, v in ckpt["model"].items() if v.is_floating_point()][-1]
        t = ckpt["model"][key].clone()
        t.view(-1)[0] = float("inf")
        ckpt["model"][key] = t
    elif case == "tokenizer-bins-huge":
        ckpt["tokenizer"] = {**ckpt["tokenizer"], "n_bins": 10**9}
    elif case == "config-mismatch":
        ckpt["model_config"] = {**ckpt["model_config"], "width": 64}
    elif case == "config-wrong-type":
        ckpt["model_config"] = {**ckpt["model_config"], "depth": "two"}
    elif case == "no-format":
        del ckpt["format"]
    return _write(tmp_path / f"{case}.pt", ckpt)


IN_PROCESS = {
    "step-string": "'step'",
    "step-negative": "'step'",
    "step-float": "'step'",
    "text-vocab-int": "text_vocab",
    "text-vocab-numbers": "text_vocab",
    "recipe-list": "'recipe'",
    "nan-weight": "NaN or infinite",
    "inf-weight": "NaN or infinite",
    "tokenizer-bins-huge": "n_bins",
    "config-mismatch": "do not fit",
    "config-wrong-type": "depth",
    "no-format": "not a vla-eval checkpoint",
}


@pytest.mark.parametrize(("case", "needle"), IN_PROCESS.items(), ids=list(IN_PROCESS))
def test_damaged_checkpoint_refused_by_offline(good, tmp_path, run_inprocess, case, needle):
    path = _damaged(good, case, tmp_path)
    check_refused(run_inprocess("offline", str(path), "--no-progress"), needle)


@pytest.mark.parametrize("case", ["step-string", "nan-weight", "text-vocab-int"])
def test_damaged_checkpoint_refused_by_online(good, tmp_path, run_inprocess, case):
    path = _damaged(good, case, tmp_path)
    out = tmp_path / "e.jsonl"
    result = run_inprocess("online", str(path), "--trials", "1", "--out", str(out), "--no-progress")
    check_refused(result, str(path))
    assert not out.exists() or out.stat().st_size == 0  # nothing was rolled out


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("data.npy", "npy", "single .npy"),
        ("data.npz", "truncated", "data.npz"),
        ("data.npz", "not-npy", "not a .npy array"),
        ("data.npz", "object", "object array"),
        ("data.npz", "no-schema", "schema"),
    ],
)
def test_bad_offline_data(good, tmp_path, run_inprocess, name, content, needle):
    ckpt = _write(tmp_path / "good.pt", good)
    path = tmp_path / name
    if content == "npy":
        np.save(path, np.zeros(3))
    else:
        buf = io.BytesIO()
        if content == "object":
            np.savez(buf, schema=np.array("vla-eval/demos/1"), x=np.array([{}], dtype=object))
        elif content == "no-schema":
            np.savez(buf, x=np.zeros(3))
        else:
            np.savez(buf, schema=np.array("vla-eval/demos/1"), x=np.zeros(1000))
        data = buf.getvalue()
        if content == "truncated":
            data = data[: len(data) // 2]
        if content == "not-npy":
            with zipfile.ZipFile(buf := io.BytesIO(), "w") as zf:
                zf.writestr("images.txt", "1 2 3")
            data = buf.getvalue()
        path.write_bytes(data)
    check_refused(run_inprocess("offline", str(ckpt), "--data", str(path), "--no-progress"), needle)


@pytest.mark.slow
def test_declared_width_is_checked_before_allocating(good, tmp_path):
    """A 2 MB-class file declaring width 10^7 would need ~7 GB: refused under a 3 GB limit."""
    ckpt = {**good, "model_config": {**good["model_config"], "width": 10**7 // 2 * 2}}
    path = _write(tmp_path / "wide.pt", ckpt)
    assert path.stat().st_size < 4 * 1024**2
    result = run_subprocess(["offline", str(path), "--no-progress"], cwd=tmp_path)
    check_refused(result, "wide.pt")


@pytest.mark.slow
def test_pickle_payload_never_runs(good, tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.pt", {**good, "extra": _Payload(marker)})
    for argv in (["offline", str(path)], ["online", str(path), "--trials", "1"]):
        result = run_subprocess([*argv, "--no-progress"], cwd=tmp_path)
        check_refused(result, "refusing to load")
        assert not marker.exists()
    assert not os.path.exists(tmp_path / "pwned")
