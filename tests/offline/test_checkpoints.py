"""`vla-eval offline CKPT`: real checkpoints of the session's smoke run, data files, bad input.

Expected values are written out here in numpy/scipy (the default binning formula,
masked means, log-softmax losses) on the raw model's outputs, never taken from
vla_eval.offline.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from vla_eval.envs.base import FAMILIES
from vla_eval.envs.tabletop import ACTION_NAMES
from vla_eval.trainer.data.datasets import heldout_dataset, make_web_dataset
from vla_eval.trainer.data.files import save_dataset

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def default_bins(a: np.ndarray) -> np.ndarray:
    """The default tokenizer written out: floor((a + 1) / 2 * 256) clipped to 0..255."""
    return np.clip(np.floor((np.clip(a, -1, 1) + 1) / 2 * 256), 0, 255).astype(np.int64)


def default_centres(b: np.ndarray) -> np.ndarray:
    return -1 + (b + 0.5) * 2 / 256


def test_table_on_a_real_checkpoint(offline_cli, smoke_checkpoint) -> None:
    code, out, _ = offline_cli(str(smoke_checkpoint), "--per-task", "2", "--web-examples", "64",
                           "--no-progress")  # fmt: skip
    assert code == 0
    assert "step 24, stage specialise, run smoke" in out
    for section in ("overall", "  seen", "  unseen", "per task and split", "pick/unseen",
                    "per action dimension", "per chunk step", "t+7", "dispersion ratio",
                    "web VQA"):  # fmt: skip
        assert section in out, section
    for name in ACTION_NAMES:
        assert f"\n  {name} " in out


def test_json_matches_numpy_on_the_same_model(
    offline_cli, smoke_checkpoint, smoke_run, strict_json
) -> None:
    code, out, _ = offline_cli(str(smoke_checkpoint), "--per-task", "2", "--web-examples", "64",
                           "--split", "seen", "--json", "--no-progress")  # fmt: skip
    assert code == 0
    body = strict_json(out)
    assert body["schema"] == "vla-eval/offline/1" and body["kind"] == "checkpoints"
    assert {"command", "versions", "seeds", "created"} <= set(body["provenance"])
    assert body["provenance"]["seeds"] == {"data": 0, "web": 1_000_003}
    (result,) = body["results"]
    assert (result["step"], result["stage"], result["run"]) == (24, "specialise", "smoke")
    m = result["metrics"]
    assert list(m["per_split"]) == ["seen"]

    # Independently: the raw model on the same held-out samples, scored in numpy.
    state = torch.load(smoke_checkpoint, weights_only=True)
    from vla_eval.trainer.model import TinyVLA

    model = TinyVLA(state["model_config"]).eval()
    model.load_state_dict(state["model"])
    ds = heldout_dataset("seen", 2, 8, 0)
    with torch.no_grad():
        out_ = model(torch.from_numpy(ds.images), torch.from_numpy(ds.tokens),
                     torch.from_numpy(ds.states))  # fmt: skip
    logits = out_.action_logits.double().numpy()
    pred_b = logits.argmax(-1)
    target = ds.actions.astype(np.float64)
    target_b = default_bins(target)
    valid = np.broadcast_to(ds.mask[:, :, None], target.shape)
    nll = -np.take_along_axis(log_softmax(logits, -1), target_b[..., None], -1)[..., 0]
    err = np.abs(pred_b - target_b)
    diff = default_centres(pred_b) - target
    assert m["overall"]["count"] == valid.sum()
    assert m["overall"]["accuracy"] == pytest.approx((err == 0)[valid].mean())
    assert m["overall"]["within_2"] == pytest.approx((err <= 2)[valid].mean())
    assert m["overall"]["l1"] == pytest.approx(np.abs(diff)[valid].mean())
    assert m["overall"]["mse"] == pytest.approx((diff**2)[valid].mean())
    assert m["overall"]["loss"] == pytest.approx(nll[valid].mean(), rel=1e-5)
    dx = valid[..., 0]
    assert m["per_dim"]["dx"]["accuracy"] == pytest.approx((err[..., 0] == 0)[dx].mean())
    first = ds.mask[:, 0]
    assert m["per_chunk_step"][0]["l1"] == pytest.approx(np.abs(diff[:, 0])[first].mean())
    pick = (ds.task == FAMILIES.index("pick"))[:, None, None] & valid
    assert m["per_task"]["pick"]["accuracy"] == pytest.approx((err == 0)[pick].mean())
    # Dispersion: std of predicted over std of true dy across valid entries.
    p_dy, t_dy = default_centres(pred_b)[..., 1][dx], target[..., 1][dx]
    assert m["dispersion_ratio"]["dy"] == pytest.approx(p_dy.std() / t_dy.std(), rel=1e-6)
    assert m["dispersion_ratio"]["dz"] is None  # the world never moves in z

    web = make_web_dataset(64, seed=1_000_003)
    with torch.no_grad():
        answer_logits = model(torch.from_numpy(web.images), torch.from_numpy(web.questions),
                              torch.zeros(64, 5)).answer_logits.double().numpy()  # fmt: skip
    web_nll = -log_softmax(answer_logits, -1)[np.arange(64), web.answers]
    assert m["web"]["count"] == 64
    assert m["web"]["accuracy"] == pytest.approx((answer_logits.argmax(-1) == web.answers).mean())
    assert m["web"]["loss"] == pytest.approx(web_nll.mean(), rel=1e-5)

    # The trainer evaluated the same held-out set (2 per task, seed 0) at its last step.
    trained = json.loads((smoke_run / "run.json").read_text())["heldout"]
    assert m["per_split"]["seen"]["accuracy"] == pytest.approx(
        trained["heldout"]["seen"]["accuracy"]
    )
    assert m["web"]["accuracy"] == pytest.approx(trained["web_accuracy"])


def test_several_checkpoints_give_a_learning_curve_and_plots(
    offline_cli, smoke_run, tmp_path, strict_json
) -> None:
    ckpts = [smoke_run / "checkpoints" / f"step_{s:06d}.pt" for s in (1, 8, 24)]
    # A run directory stands for all of its checkpoints.
    code, out, _ = offline_cli(str(tmp_path), "--no-progress")
    assert code == 2
    code, out, _ = offline_cli(str(smoke_run), "--per-task", "1", "--web-examples", "0",
                           "--json", "--no-progress")  # fmt: skip
    assert [r["step"] for r in strict_json(out)["results"]] == [1, 8, 16, 20, 24]

    out_dir = tmp_path / "offline"
    code, out, err = offline_cli(*map(str, ckpts), "--per-task", "1", "--web-examples", "32",
                             "--out", str(out_dir), "--no-progress")  # fmt: skip
    assert code == 0
    assert "learning curve (held-out)" in out and "wrote" in err
    rows = [line.split() for line in out.splitlines()[2:5]]
    assert [(r[0], r[1]) for r in rows] == [
        ("1", "align"),
        ("8", "cofinetune"),
        ("24", "specialise"),
    ]
    body = strict_json((out_dir / "offline.json").read_text())
    assert [r["step"] for r in body["results"]] == [1, 8, 24]
    for name in ("dimension_accuracy.png", "open_loop.png", "learning_curve.png"):
        data = (out_dir / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 20_000, name
    traces = body["results"][-1]["traces"]
    assert {t["task"] for t in traces} == set(FAMILIES)
    for t in traces:  # the demonstration's own actions, step by step
        assert len(t["step"]) == len(t["true"]) == len(t["pred"]) and t["step"] == sorted(t["step"])


def test_data_files_and_a_different_vocabulary_give_the_same_numbers(
    offline_cli, smoke_checkpoint, tmp_path, strict_json
) -> None:
    ds = heldout_dataset("unseen", 1, 10, seed=5)  # longer chunks than the model's 8
    plain = save_dataset(tmp_path / "plain" / "unseen.npz", ds)
    # The same data with the vocabulary shuffled (ids re-mapped consistently):
    rng = np.random.default_rng(0)
    order = np.r_[0:4, 4 + rng.permutation(len(ds.vocab) - 4)]  # keep the special tokens
    inverse = np.argsort(order)
    shuffled = heldout_dataset("unseen", 1, 10, seed=5)
    shuffled.vocab = ds.vocab[order]
    shuffled.tokens = inverse[ds.tokens]
    other = save_dataset(tmp_path / "shuffled.npz", shuffled)
    save_dataset(tmp_path / "plain" / "web.npz", make_web_dataset(16, seed=9))

    bodies = []
    for data in (plain.parent, other):
        code, out, _ = offline_cli(
            str(smoke_checkpoint), "--data", str(data), "--json", "--no-progress"
        )
        assert code == 0
        bodies.append(strict_json(out))
    a, b = (x["results"][0]["metrics"] for x in bodies)
    assert list(a["per_split"]) == ["unseen"] and a["chunk"] == 8
    assert bodies[0]["data"]["samples"] == {"unseen": len(ds)}
    assert a["web"]["count"] == 16 and "web" not in b
    for key in ("loss", "accuracy", "l1", "mse"):
        assert a["overall"][key] == pytest.approx(b["overall"][key])
    # Chunks of 10 scored as the model's 8: the first 8 steps of each chunk.
    assert a["overall"]["count"] == ds.mask[:, :8].sum() * 7


# --- bad input ----------------------------------------------------------------------------------


class _Exploit:
    """Unpickling this would create the marker file: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_checkpoint_is_refused_and_nothing_runs(
    offline_cli, smoke_checkpoint, tmp_path, one_line_error
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "vla-eval/smoke_checkpoint/1", "model": _Exploit(marker)}, evil)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    for path in (evil, raw):
        # A good checkpoint first: nothing is evaluated before every file has been checked.
        code, out, err = offline_cli(str(smoke_checkpoint), str(path), "--no-progress")
        one_line_error(code, out, err, str(path))
        assert "refusing to load" in err
        assert not marker.exists()


@pytest.mark.parametrize("case", ["truncated", "wrong_version", "missing", "empty", "not_torch"])
def test_damaged_checkpoints_exit_2(
    offline_cli, smoke_checkpoint, tmp_path, case, one_line_error
) -> None:
    path = tmp_path / f"{case}.pt"
    if case == "truncated":
        data = smoke_checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        expect = "truncated"
    elif case == "wrong_version":
        state = torch.load(smoke_checkpoint, weights_only=True)
        state["format"] = "vla-eval/smoke_checkpoint/0"
        torch.save(state, path)
        expect = "vla-eval/smoke_checkpoint/0"
    elif case == "missing":
        expect = "not found"
    elif case == "empty":
        path.touch()
        expect = "empty"
    else:
        path.write_text("not a checkpoint\n")
        expect = str(path)
    code, out, err = offline_cli(str(path), "--no-progress")
    one_line_error(code, out, err, expect)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "give one or more checkpoints"),
        (["CKPT", "--predictions", "p.npz"], "not both"),
        (["CKPT", "--bins", "16"], "--bins applies to --predictions"),
        (["--predictions", "p.npz", "--split", "seen"], "--split applies to checkpoints"),
        (["CKPT", "--split", "train"], "unknown split 'train'"),
        (["CKPT", "--per-task", "0"], "--per-task"),
        (["CKPT", "--batch-size", "0"], "--batch-size"),
        (["CKPT", "--data", "d.npz", "--seed", "3"], "--seed describes the built-in"),
        (["CKPT", "--data", "no/such/dir"], "no such file or directory"),
        (["--predictions", "p.npz", "--tokenizer", "rt2"], "invalid choice"),
    ],
)
def test_option_misuse_exits_2(offline_cli, smoke_checkpoint, argv, needle, one_line_error) -> None:
    argv = [str(smoke_checkpoint) if a == "CKPT" else a for a in argv]
    one_line_error(*offline_cli(*argv, "--no-progress"), needle)


def test_data_with_shorter_chunks_than_the_model_exit_2(
    offline_cli, smoke_checkpoint, tmp_path, one_line_error
) -> None:
    path = save_dataset(tmp_path / "short.npz", heldout_dataset("seen", 1, 4, seed=1))
    code, out, err = offline_cli(str(smoke_checkpoint), "--data", str(path), "--no-progress")
    one_line_error(code, out, err, "fewer than the model's horizon 8")


def test_task_and_dimension_names_come_from_the_data(smoke_checkpoint) -> None:
    """The evaluator knows no world: the held-out data names the tasks and dimensions."""
    from dataclasses import replace

    from vla_eval.offline.evaluate import evaluate_model
    from vla_eval.offline.heldout import builtin_heldout
    from vla_eval.trainer.checkpoint import load_policy

    model, tokenizer, _ = load_policy(smoke_checkpoint)
    world = builtin_heldout(["seen"], per_task=1, horizon=8, seed=0, web_examples=0)
    renamed = replace(
        world,
        task_names=[f"task{i}" for i in range(len(FAMILIES))],
        action_names=[f"a{i}" for i in range(len(ACTION_NAMES))],
    )
    a = evaluate_model(model, tokenizer, world, n_traces=1)
    b = evaluate_model(model, tokenizer, renamed, n_traces=1)
    assert set(a["metrics"]["per_task"]) == set(FAMILIES)
    assert set(b["metrics"]["per_task"]) == {f"task{i}" for i in range(len(FAMILIES))}
    assert list(b["metrics"]["per_dim"]) == [f"a{i}" for i in range(len(ACTION_NAMES))]
    assert b["traces"][0]["dims"] == list(b["metrics"]["per_dim"])
    assert b["traces"][0]["task"] == "task0"
    assert a["metrics"]["overall"] == b["metrics"]["overall"]
    # Data that names nothing: tasks by number, dimensions d0, d1, ...
    bare = replace(world, task_names=(), action_names=None)
    c = evaluate_model(model, tokenizer, bare, n_traces=0)
    assert set(c["metrics"]["per_task"]) == {str(i) for i in range(len(FAMILIES))}
    assert list(c["metrics"]["per_dim"]) == [f"d{i}" for i in range(len(ACTION_NAMES))]
