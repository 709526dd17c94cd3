"""OfflineMetrics against hand-written numpy on fixtures, and exact merging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax

from vla_eval.errors import UsageError
from vla_eval.offline.metrics import OfflineMetrics


def bins256(a: np.ndarray) -> np.ndarray:
    """The default tokenizer written out: floor((a + 1) / 2 * 256) clipped to 0..255."""
    return np.clip(np.floor((np.clip(a, -1, 1) + 1) / 2 * 256), 0, 255).astype(int)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    n, h, d = 40, 3, 4
    target = rng.uniform(-1, 1, (n, h, d))
    pred = np.clip(target + rng.normal(0, 0.02, (n, h, d)), -1, 1)
    task = np.array(["pick", "place"] * (n // 2))
    split = np.where(np.arange(n) < 30, "seen", "unseen")
    logits = rng.normal(0, 1, (n, h, d, 256))
    return target, pred, task, split, logits


def test_against_hand_computation(batch) -> None:
    target, pred, task, split, logits = batch
    m = OfflineMetrics()
    m.update(target, pred_actions=pred, logits=logits, task=task, split=split)
    out = m.compute()

    tb, pb = bins256(target), bins256(pred)
    err = np.abs(tb - pb)
    assert out["overall"]["accuracy"] == pytest.approx((err == 0).mean())
    for k in (1, 2, 5):
        assert out["overall"][f"within_{k}"] == pytest.approx((err <= k).mean())
    assert out["overall"]["l1"] == pytest.approx(np.abs(pred - target).mean())
    assert out["overall"]["mse"] == pytest.approx(((pred - target) ** 2).mean())
    nll = -np.take_along_axis(log_softmax(logits, -1), tb[..., None], -1)[..., 0]
    assert out["overall"]["loss"] == pytest.approx(nll.mean())
    assert out["overall"]["count"] == target.size

    for i in range(4):
        assert out["per_dim"][f"d{i}"]["l1"] == pytest.approx(np.abs(pred - target)[..., i].mean())
        assert out["per_dim"][f"d{i}"]["accuracy"] == pytest.approx((err[..., i] == 0).mean())
    for j in range(3):
        assert out["per_chunk_step"][j]["mse"] == pytest.approx(((pred - target)[:, j] ** 2).mean())
    for name in ("pick", "place"):
        rows = task == name
        assert out["per_task"][name]["accuracy"] == pytest.approx((err[rows] == 0).mean())
    rows = split == "unseen"
    assert out["per_split"]["unseen"]["l1"] == pytest.approx(np.abs(pred - target)[rows].mean())
    ratio = pred.reshape(-1, 4).std(0) / target.reshape(-1, 4).std(0)
    assert list(out["dispersion_ratio"].values()) == pytest.approx(ratio.tolist())


def test_small_fixture_written_out() -> None:
    # Two samples, one dimension. Targets 0.0 -> bin 128, 0.5 -> bin 192.
    # Predictions 0.0 -> bin 128 (exact), 0.52 -> floor(1.52 * 128) = 194 (2 bins off).
    m = OfflineMetrics()
    m.update(np.array([[0.0], [0.5]]), pred_actions=np.array([[0.0], [0.52]]))
    o = m.compute()["overall"]
    assert o["accuracy"] == 0.5
    assert o["within_1"] == 0.5 and o["within_2"] == 1.0
    assert o["l1"] == pytest.approx(0.01) and o["mse"] == pytest.approx(0.0002)
    assert o["loss"] is None  # no logits given: undefined, not NaN


def test_mask_excludes_padding() -> None:
    target = np.zeros((2, 2, 1))
    pred = np.array([[[0.0], [0.9]], [[0.0], [0.9]]])  # second chunk step is padding
    m = OfflineMetrics()
    m.update(target, pred_actions=pred, mask=np.array([[True, False], [True, False]]))
    out = m.compute()
    assert out["overall"]["accuracy"] == 1.0 and out["overall"]["count"] == 2
    assert out["per_chunk_step"][1]["accuracy"] is None


def test_pred_tokens_decode_to_bin_centres() -> None:
    m = OfflineMetrics()
    m.update(np.array([[0.0]]), pred_tokens=np.array([[130]]))
    # bin 130's centre is -1 + (130.5) * 2/256 = 0.01953125
    assert m.compute()["overall"]["l1"] == pytest.approx(0.01953125)


def test_web_metrics() -> None:
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 0.0]])
    targets = np.array([0, 1, 1])
    m = OfflineMetrics()
    m.update(np.zeros((1, 1)), pred_actions=np.zeros((1, 1)))
    m.update_web(logits, targets, kind=["colour", "colour", "count"])
    web = m.compute()["web"]
    expected = -log_softmax(logits, -1)[np.arange(3), targets]
    assert web["loss"] == pytest.approx(expected.mean())
    assert web["accuracy"] == pytest.approx(1 / 3)  # third row's argmax is 0 (first max)
    assert web["per_kind"]["colour"]["accuracy"] == 0.5


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 29))
def test_merge_equals_whole(seed: int, cut: int) -> None:
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, (30, 2, 3))
    pred = rng.uniform(-1, 1, (30, 2, 3))
    logits = rng.normal(size=(30, 2, 3, 256))
    task = rng.choice(["a", "b", "c"], 30)
    whole = OfflineMetrics()
    whole.update(target, pred_actions=pred, logits=logits, task=task)
    left, right = OfflineMetrics(), OfflineMetrics()
    left.update(target[:cut], pred_actions=pred[:cut], logits=logits[:cut], task=task[:cut])
    right.update(target[cut:], pred_actions=pred[cut:], logits=logits[cut:], task=task[cut:])
    merged = left.merge(right).compute()
    expected = whole.compute()
    assert merged["overall"]["count"] == expected["overall"]["count"]
    assert merged["overall"]["accuracy"] == expected["overall"]["accuracy"]  # integer counts
    for key in ("loss", "l1", "mse"):
        assert merged["overall"][key] == pytest.approx(expected["overall"][key], rel=1e-12)
    assert merged["per_task"].keys() == expected["per_task"].keys()


def test_bad_input() -> None:
    m = OfflineMetrics()
    with pytest.raises(UsageError, match="pred_actions or pred_tokens"):
        m.update(np.zeros((2, 3)))
    with pytest.raises(UsageError, match="NaN"):
        m.update(np.zeros((2, 3)), pred_actions=np.full((2, 3), np.nan))
    m.update(np.zeros((2, 3)), pred_actions=np.zeros((2, 3)))
    with pytest.raises(UsageError, match="changed"):
        m.update(np.zeros((2, 4)), pred_actions=np.zeros((2, 4)))
    with pytest.raises(UsageError, match="no samples"):
        OfflineMetrics().compute()


def test_import_stays_light() -> None:
    """The metrics, and every offline module, load without torch (it comes inside functions)."""
    modules = ", ".join(
        f"vla_eval.offline.{m}"
        for m in ("metrics", "heldout", "evaluate", "predictions", "traces", "output")
    )
    code = f"import sys, {modules}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
