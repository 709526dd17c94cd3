"""`vla-eval offline`: checkpoints on held-out data, predictions files, plots, bad input.

Expected values are written out here in numpy/scipy (the default and OpenVLA binning
formulas, masked means, log-softmax losses), never taken from vla_eval.offline.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

from vla_eval.cli import main
from vla_eval.envs.base import FAMILIES
from vla_eval.envs.tabletop import ACTION_NAMES
from vla_eval.trainer.data import heldout_dataset, make_web_dataset, save_dataset

ROOT = Path(__file__).parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """A real (tiny) training run: checkpoints at steps 1, 8, 16, 20 and 24."""
    from vla_eval.protocol import load_protocol
    from vla_eval.trainer.train import train

    out = tmp_path_factory.mktemp("offline-run")
    protocol = load_protocol(ROOT / "protocols" / "smoke.toml")
    train(protocol.train, out_dir=out, progress=False)
    return out


@pytest.fixture(scope="session")
def ckpt(run_dir) -> Path:
    return run_dir / "checkpoints" / "step_000024.pt"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["offline", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def default_bins(a: np.ndarray) -> np.ndarray:
    """The default tokenizer written out: floor((a + 1) / 2 * 256) clipped to 0..255."""
    return np.clip(np.floor((np.clip(a, -1, 1) + 1) / 2 * 256), 0, 255).astype(np.int64)


def default_centres(b: np.ndarray) -> np.ndarray:
    return -1 + (b + 0.5) * 2 / 256


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vla-eval: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- checkpoints ------------------------------------------------------------------------------


def test_table_on_a_real_checkpoint(capsys, ckpt) -> None:
    code, out, _ = run_cli(capsys, str(ckpt), "--per-task", "2", "--web-examples", "64",
                           "--no-progress")  # fmt: skip
    assert code == 0
    assert "step 24, stage specialise, run smoke" in out
    for section in ("overall", "  seen", "  unseen", "per task and split", "pick/unseen",
                    "per action dimension", "per chunk step", "t+7", "dispersion ratio",
                    "web VQA"):  # fmt: skip
        assert section in out, section
    for name in ACTION_NAMES:
        assert f"\n  {name} " in out


def test_json_matches_numpy_on_the_same_model(capsys, ckpt, run_dir) -> None:
    code, out, _ = run_cli(capsys, str(ckpt), "--per-task", "2", "--web-examples", "64",
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
    state = torch.load(ckpt, weights_only=True)
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
    trained = json.loads((run_dir / "run.json").read_text())["heldout"]
    assert m["per_split"]["seen"]["accuracy"] == pytest.approx(
        trained["heldout"]["seen"]["accuracy"]
    )
    assert m["web"]["accuracy"] == pytest.approx(trained["web_accuracy"])


def test_several_checkpoints_give_a_learning_curve_and_plots(capsys, run_dir, tmp_path) -> None:
    ckpts = [run_dir / "checkpoints" / f"step_{s:06d}.pt" for s in (1, 8, 24)]
    # A run directory stands for all of its checkpoints.
    code, out, _ = run_cli(capsys, str(tmp_path), "--no-progress")
    assert code == 2
    code, out, _ = run_cli(capsys, str(run_dir), "--per-task", "1", "--web-examples", "0",
                           "--json", "--no-progress")  # fmt: skip
    assert [r["step"] for r in strict_json(out)["results"]] == [1, 8, 16, 20, 24]

    out_dir = tmp_path / "offline"
    code, out, err = run_cli(capsys, *map(str, ckpts), "--per-task", "1", "--web-examples", "32",
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
    capsys, ckpt, tmp_path
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
        code, out, _ = run_cli(capsys, str(ckpt), "--data", str(data), "--json", "--no-progress")
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


# --- predictions files ------------------------------------------------------------------------


def _write(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_predictions_against_hand_computation(capsys, tmp_path) -> None:
    rng = np.random.default_rng(1)
    n, h, d = 30, 3, 4
    target = rng.uniform(-1, 1, (n, h, d))
    pred = np.clip(target + rng.normal(0, 0.03, (n, h, d)), -1, 1)
    logits = rng.normal(0, 2, (n, h, d, 256))
    task = np.array(["pick", "pour", "stack"] * 10)
    split = np.where(np.arange(n) % 4 == 0, "unseen", "seen")
    mask = np.ones((n, h), bool)
    mask[::5, 2] = False  # padding past an episode's end
    path = _write(tmp_path / "p.npz", target_actions=target, pred_actions=pred, logits=logits,
                  task=task, split=split, mask=mask)  # fmt: skip
    code, out, _ = run_cli(capsys, "--predictions", str(path), "--json")
    assert code == 0
    body = strict_json(out)
    assert body["kind"] == "predictions" and body["schema"] == "vla-eval/offline/1"
    m = body["results"][0]["metrics"]

    v = np.broadcast_to(mask[:, :, None], target.shape)
    tb, pb = default_bins(target), default_bins(pred)
    err = np.abs(tb - pb)
    nll = -np.take_along_axis(log_softmax(logits, -1), tb[..., None], -1)[..., 0]
    assert m["overall"]["count"] == v.sum()
    assert m["overall"]["accuracy"] == pytest.approx((err == 0)[v].mean())
    for k in (1, 2, 5):
        assert m["overall"][f"within_{k}"] == pytest.approx((err <= k)[v].mean())
    assert m["overall"]["l1"] == pytest.approx(np.abs(pred - target)[v].mean())
    assert m["overall"]["mse"] == pytest.approx(((pred - target) ** 2)[v].mean())
    assert m["overall"]["loss"] == pytest.approx(nll[v].mean())
    for s in ("seen", "unseen"):
        rows = (split == s)[:, None, None] & v
        assert m["per_split"][s]["l1"] == pytest.approx(np.abs(pred - target)[rows].mean())
    rows = (task == "stack")[:, None, None] & v
    assert m["per_task"]["stack"]["mse"] == pytest.approx(((pred - target) ** 2)[rows].mean())
    assert m["per_dim"]["d2"]["accuracy"] == pytest.approx((err[..., 2] == 0)[v[..., 2]].mean())
    assert m["per_chunk_step"][2]["count"] == mask[:, 2].sum() * d
    detail = body["results"][0]["by_split"]["unseen"]["per_dim"]["d0"]
    rows = (split == "unseen")[:, None] & mask
    assert detail["accuracy"] == pytest.approx((err[..., 0] == 0)[rows].mean())


def test_prediction_tokens_with_custom_bins(capsys, tmp_path) -> None:
    rng = np.random.default_rng(2)
    target = rng.uniform(-2.5, 2.5, (40, 6))  # (N, D): no chunk axis
    tokens = rng.integers(0, 10, (40, 6))
    path = _write(tmp_path / "t.npz", target_actions=target, pred_tokens=tokens,
                  dim_names=np.array(list("abcdef")))  # fmt: skip
    code, out, err = run_cli(capsys, "--predictions", str(path), "--bins", "10", "--low", "-2",
                             "--high", "2", "--json")  # fmt: skip
    assert code == 0
    assert "outside [-2, 2]" in err  # targets beyond the range are flagged
    m = strict_json(out)["results"][0]["metrics"]
    target_b = np.clip(np.floor((np.clip(target, -2, 2) + 2) / 4 * 10), 0, 9)
    centres = -2 + (tokens + 0.5) * 0.4
    assert m["chunk"] == 1 and list(m["per_dim"]) == list("abcdef")
    assert m["overall"]["accuracy"] == pytest.approx((target_b == tokens).mean())
    assert m["overall"]["within_1"] == pytest.approx((np.abs(target_b - tokens) <= 1).mean())
    assert m["overall"]["l1"] == pytest.approx(np.abs(centres - target).mean())
    assert m["per_dim"]["c"]["mse"] == pytest.approx(((centres - target)[:, 2] ** 2).mean())
    assert m["overall"]["loss"] is None  # no logits, no loss

    code, out, err = run_cli(capsys, "--predictions", str(path), "--bins", "10", "--low", "-2",
                             "--high", "2", "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 0 and "per action dimension" in out
    assert strict_json((tmp_path / "o" / "offline.json").read_text())["kind"] == "predictions"
    assert (tmp_path / "o" / "dimension_accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_openvla_tokenizer_option(capsys, tmp_path) -> None:
    rng = np.random.default_rng(3)
    target = np.concatenate([rng.uniform(-1, 1, (50, 7)), [[1.0] * 7, [-1.0] * 7]])
    pred = np.clip(target + rng.normal(0, 0.01, target.shape), -1, 1)
    path = _write(tmp_path / "o.npz", target_actions=target, pred_actions=pred)
    code, out, _ = run_cli(capsys, "--predictions", str(path), "--tokenizer", "openvla", "--json")
    assert code == 0
    m = strict_json(out)["results"][0]["metrics"]
    # OpenVLA (prismatic/vla/action_tokenizer.py): 256 edges, digitize, ids from the top.
    edges = np.linspace(-1, 1, 256)
    t_ids = 32000 - np.digitize(np.clip(target, -1, 1), edges)
    p_ids = 32000 - np.digitize(np.clip(pred, -1, 1), edges)
    assert m["overall"]["accuracy"] == pytest.approx((t_ids == p_ids).mean())
    assert m["overall"]["within_1"] == pytest.approx((np.abs(t_ids - p_ids) <= 1).mean())
    assert m["overall"]["l1"] == pytest.approx(np.abs(pred - target).mean())
    assert strict_json(out)["results"][0]["tokenizer"]["scheme"] == "openvla"

    # Scoring OpenVLA's predicted tokens, given as bin indices (token id -> 32000 - id - 1).
    bins = 32000 - p_ids - 1  # 0..255
    # OpenVLA decodes: discretized = vocab - id = bins + 1; centres[clip(discretized - 1, 0, 254)].
    centres = (edges[:-1] + edges[1:]) / 2
    decoded = centres[np.clip(bins, 0, 254)]
    path = _write(tmp_path / "ot.npz", target_actions=target, pred_tokens=bins)
    code, out, _ = run_cli(capsys, "--predictions", str(path), "--tokenizer", "openvla", "--json")
    m = strict_json(out)["results"][0]["metrics"]
    assert m["overall"]["l1"] == pytest.approx(np.abs(decoded - target).mean())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 12),
    h=st.integers(1, 3),
    d=st.integers(1, 3),
    n_splits=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_property_predictions_match_numpy_whatever_the_splits(n, h, d, n_splits, seed) -> None:
    from vla_eval.offline import prediction_tokenizer, score_predictions

    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, (n, h, d))
    pred = rng.uniform(-1, 1, (n, h, d))
    split = rng.choice([f"s{i}" for i in range(n_splits)], n)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp) / "p.npz", target_actions=target, pred_actions=pred, split=split)
        body = score_predictions(path, prediction_tokenizer())
    m = body["results"][0]["metrics"]
    err = np.abs(default_bins(target) - default_bins(pred))
    assert m["overall"]["count"] == n * h * d
    assert m["overall"]["accuracy"] == pytest.approx((err == 0).mean())
    assert m["overall"]["within_5"] == pytest.approx((err <= 5).mean())
    assert m["overall"]["l1"] == pytest.approx(np.abs(pred - target).mean())
    assert m["overall"]["mse"] == pytest.approx(((pred - target) ** 2).mean())
    assert sum(v["count"] for v in m["per_split"].values()) == n * h * d


def test_scoring_predictions_never_imports_torch(tmp_path) -> None:
    path = _write(
        tmp_path / "p.npz", target_actions=np.zeros((3, 2)), pred_actions=np.zeros((3, 2))
    )
    code = (
        "import sys; from vla_eval.offline import score_predictions, prediction_tokenizer; "
        f"score_predictions({str(path)!r}, prediction_tokenizer()); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- bad input ----------------------------------------------------------------------------------


class _Exploit:
    """Unpickling this would create the marker file: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_checkpoint_is_refused_and_nothing_runs(capsys, ckpt, tmp_path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "vla-eval/ckpt/1", "model": _Exploit(marker)}, evil)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(_Exploit(marker)))
    for path in (evil, raw):
        # A good checkpoint first: nothing is evaluated before every file has been checked.
        code, out, err = run_cli(capsys, str(ckpt), str(path), "--no-progress")
        assert_one_line_error(code, out, err, str(path))
        assert "refusing to load" in err
        assert not marker.exists()


@pytest.mark.parametrize("case", ["truncated", "wrong_version", "missing", "empty", "not_torch"])
def test_damaged_checkpoints_exit_2(capsys, ckpt, tmp_path, case) -> None:
    path = tmp_path / f"{case}.pt"
    if case == "truncated":
        data = ckpt.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        expect = "truncated"
    elif case == "wrong_version":
        state = torch.load(ckpt, weights_only=True)
        state["format"] = "vla-eval/ckpt/0"
        torch.save(state, path)
        expect = "vla-eval/ckpt/0"
    elif case == "missing":
        expect = "not found"
    elif case == "empty":
        path.touch()
        expect = "empty"
    else:
        path.write_text("not a checkpoint\n")
        expect = str(path)
    code, out, err = run_cli(capsys, str(path), "--no-progress")
    assert_one_line_error(code, out, err, expect)


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"pred_actions": np.zeros((4, 2))}, "'target_actions'"),
        ({"target_actions": np.zeros((4, 2))}, "'pred_actions' or 'pred_tokens'"),
        ({"target_actions": np.zeros((4, 2)), "pred_actions": np.zeros((4, 3))}, "'pred_actions'"),
        ({"target_actions": np.zeros((4, 2, 3)), "pred_tokens": np.zeros((4, 3, 2), int)},
         "'pred_tokens'"),
        ({"target_actions": np.zeros(4), "pred_actions": np.zeros(4)}, "'target_actions'"),
        ({"target_actions": np.zeros((4, 2)), "pred_actions": np.full((4, 2), np.nan)},
         "'pred_actions' contains NaN"),
        ({"target_actions": np.zeros((4, 2)), "pred_actions": np.zeros((4, 2)),
          "task": np.array(["a", "b", 3], dtype=object)}, "'task' is an object array"),
        ({"target_actions": np.zeros((4, 2)), "pred_actions": np.zeros((4, 2)),
          "task": np.array(["a", "b"])}, "'task'"),
        ({"target_actions": np.zeros((4, 2)), "pred_actions": np.zeros((4, 2)),
          "logits": np.zeros((4, 2, 10))}, "'logits'"),
        ({"target_actions": np.zeros((4, 2)), "pred_tokens": np.full((4, 2), 300)},
         "'pred_tokens'"),
        ({"target_actions": np.zeros((4, 2)), "pred_actions": np.zeros((4, 2)),
          "mask": np.ones((4, 5), bool)}, "'mask'"),
        ({"target_actions": np.array([["a", "b"]] * 4), "pred_actions": np.zeros((4, 2))},
         "'target_actions' must be numeric"),
    ],
)  # fmt: skip
def test_bad_predictions_exit_2_naming_the_key(capsys, tmp_path, arrays, needle) -> None:
    path = _write(tmp_path / "bad.npz", **arrays)
    code, out, err = run_cli(capsys, "--predictions", str(path))
    assert_one_line_error(code, out, err, needle)


def test_predictions_file_that_is_not_an_npz(capsys, tmp_path) -> None:
    path = tmp_path / "p.npz"
    path.write_text("pred_actions,target_actions\n")
    assert_one_line_error(*run_cli(capsys, "--predictions", str(path)), "not a readable")
    assert_one_line_error(*run_cli(capsys, "--predictions", str(tmp_path / "nope.npz")),
                          "not found")  # fmt: skip


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
def test_option_misuse_exits_2(capsys, ckpt, argv, needle) -> None:
    argv = [str(ckpt) if a == "CKPT" else a for a in argv]
    assert_one_line_error(*run_cli(capsys, *argv, "--no-progress"), needle)


def test_data_with_shorter_chunks_than_the_model_exit_2(capsys, ckpt, tmp_path) -> None:
    path = save_dataset(tmp_path / "short.npz", heldout_dataset("seen", 1, 4, seed=1))
    code, out, err = run_cli(capsys, str(ckpt), "--data", str(path), "--no-progress")
    assert_one_line_error(code, out, err, "fewer than the model's horizon 8")


def test_import_stays_light() -> None:
    code = "import sys, vla_eval.offline; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_plot_functions_write_pngs(tmp_path) -> None:
    from vla_eval import plots

    a = plots.dimension_accuracy_plot(
        tmp_path / "a.png", ["dx", "dy"], {"seen": {"exact": [0.5, None], "within ±1": [0.7, 0.9]}}
    )
    b = plots.learning_curve_plot(
        tmp_path / "b.png", [1, 5, 9], {"loss": {"seen": [3.0, 2.0, None]}}, marks=[(5, "x")]
    )
    trace = {
        "dims": ["dx", "dy"],
        "step": [0, 1],
        "true": [[0, 1], [1, 0]],
        "pred": [[0, 0], [1, 1]],
        "task": "pick",
        "split": "seen",
        "instruction": "go",
    }
    c = plots.action_traces_plot(tmp_path / "c.png", [trace], ["dx", "dy"])
    for p in (a, b, c):
        assert p.read_bytes()[:8] == PNG_MAGIC
