"""`vla-eval offline --predictions FILE.npz`: hand-computed metrics, tokenizers, bad files.

Expected values are written out here in numpy/scipy (the default and OpenVLA binning
formulas, masked means, log-softmax losses), never taken from vla_eval.offline.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

ROOT = Path(__file__).parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def default_bins(a: np.ndarray) -> np.ndarray:
    """The default tokenizer written out: floor((a + 1) / 2 * 256) clipped to 0..255."""
    return np.clip(np.floor((np.clip(a, -1, 1) + 1) / 2 * 256), 0, 255).astype(np.int64)


def _write(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_predictions_against_hand_computation(offline_cli, tmp_path, strict_json) -> None:
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
    code, out, _ = offline_cli("--predictions", str(path), "--json")
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


def test_prediction_tokens_with_custom_bins(offline_cli, tmp_path, strict_json) -> None:
    rng = np.random.default_rng(2)
    target = rng.uniform(-2.5, 2.5, (40, 6))  # (N, D): no chunk axis
    tokens = rng.integers(0, 10, (40, 6))
    path = _write(tmp_path / "t.npz", target_actions=target, pred_tokens=tokens,
                  dim_names=np.array(list("abcdef")))  # fmt: skip
    code, out, err = offline_cli("--predictions", str(path), "--bins", "10", "--low", "-2",
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

    code, out, err = offline_cli("--predictions", str(path), "--bins", "10", "--low", "-2",
                             "--high", "2", "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 0 and "per action dimension" in out
    assert strict_json((tmp_path / "o" / "offline.json").read_text())["kind"] == "predictions"
    assert (tmp_path / "o" / "dimension_accuracy.png").read_bytes()[:8] == PNG_MAGIC


def test_openvla_tokenizer_option(offline_cli, tmp_path, strict_json) -> None:
    rng = np.random.default_rng(3)
    target = np.concatenate([rng.uniform(-1, 1, (50, 7)), [[1.0] * 7, [-1.0] * 7]])
    pred = np.clip(target + rng.normal(0, 0.01, target.shape), -1, 1)
    path = _write(tmp_path / "o.npz", target_actions=target, pred_actions=pred)
    code, out, _ = offline_cli("--predictions", str(path), "--tokenizer", "openvla", "--json")
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
    code, out, _ = offline_cli("--predictions", str(path), "--tokenizer", "openvla", "--json")
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
    from vla_eval.offline.predictions import prediction_tokenizer, score_predictions

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
        "import sys; from vla_eval.offline.predictions import prediction_tokenizer, "
        "score_predictions; "
        f"score_predictions({str(path)!r}, prediction_tokenizer()); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# --- bad input ----------------------------------------------------------------------------------


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
def test_bad_predictions_exit_2_naming_the_key(
    offline_cli, tmp_path, arrays, needle, one_line_error
) -> None:
    path = _write(tmp_path / "bad.npz", **arrays)
    code, out, err = offline_cli("--predictions", str(path))
    one_line_error(code, out, err, needle)


def test_predictions_file_that_is_not_an_npz(offline_cli, tmp_path, one_line_error) -> None:
    path = tmp_path / "p.npz"
    path.write_text("pred_actions,target_actions\n")
    one_line_error(*offline_cli("--predictions", str(path)), "not a readable")
    one_line_error(*offline_cli("--predictions", str(tmp_path / "nope.npz")),
                          "not found")  # fmt: skip
