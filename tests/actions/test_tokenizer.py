"""ActionTokenizer: hand-computed bins, OpenVLA's published scheme, properties, persistence."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_eval.actions import ActionTokenizer
from vla_eval.errors import DataError, UsageError

finite = st.floats(-1.0, 1.0, allow_nan=False)


# --- default: 256 uniform bins over [-1, 1] ----------------------------------------


def test_default_bins_by_hand():
    tok = ActionTokenizer()
    # floor((a + 1) / 2 * 256), clipped to 0..255, worked out by hand:
    # -1 -> 0; -0.5 -> 64; 0 -> 128; 0.3 -> floor(166.4) = 166; 0.999 -> floor(255.87) = 255;
    # 1 -> 256 -> clipped 255; 3 (outside) -> clipped 255; -7 -> 0.
    a = np.array([-1.0, -0.5, 0.0, 0.3, 0.999, 1.0, 3.0, -7.0])
    assert tok.encode(a).tolist() == [0, 64, 128, 166, 255, 255, 255, 0]
    # centre of bin b is -1 + (b + 0.5) * 2 / 256
    assert tok.decode([0, 128, 166, 255]).tolist() == pytest.approx(
        [-1 + 0.5 / 128, 0.5 / 128, -1 + 166.5 / 128, 1 - 0.5 / 128]
    )
    assert tok.bin_width == pytest.approx(2 / 256)
    assert tok.bin_edges.shape == (257,)


def test_encode_shapes_and_dtype():
    tok = ActionTokenizer()
    a = np.zeros((5, 4, 7))
    bins = tok.encode(a)
    assert bins.shape == (5, 4, 7) and bins.dtype == np.int64
    assert tok.decode(bins).shape == (5, 4, 7)
    # torch tensors are accepted as input
    assert tok.encode(torch.zeros(2, 7)).shape == (2, 7)


# --- OpenVLA preset --------------------------------------------------------------


def _openvla_reference(a: np.ndarray, vocab: int = 32000, n: int = 256):
    """OpenVLA's ActionTokenizer written out from its published description."""
    edges = np.linspace(-1, 1, n)
    centers = (edges[:-1] + edges[1:]) / 2
    digitized = np.digitize(np.clip(a, -1, 1), edges)
    token_ids = vocab - digitized
    decoded = centers[np.clip((vocab - token_ids) - 1, 0, centers.shape[0] - 1)]
    return token_ids, decoded


def test_openvla_hand_values():
    tok = ActionTokenizer.openvla()
    # edges e_k = -1 + 2k/255; digitize(-1) = 1, digitize(0) = 128 (0 lies in [e_127, e_128)),
    # digitize(0.5) = 192 (0.5 = e_191.25), digitize(1) = 256. Bins are digitize - 1.
    a = np.array([-1.0, 0.0, 0.5, 1.0])
    assert tok.encode(a).tolist() == [0, 127, 191, 255]
    assert tok.to_token_ids(tok.encode(a), 32000).tolist() == [31999, 31872, 31808, 31744]
    # bin 191 decodes to the centre of [e_191, e_192] = -1 + 383/255
    assert tok.decode([191])[0] == pytest.approx(-1 + 383 / 255)
    # token for 1.0 decodes like the bin below it (255 tokens, 254 + 1 centres)
    assert tok.decode([255])[0] == tok.decode([254])[0] == pytest.approx(1 - 1 / 255)
    assert tok.bin_width == pytest.approx(2 / 255)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=1, max_size=30))
def test_openvla_matches_reference(values):
    a = np.array(values)
    tok = ActionTokenizer.openvla()
    ref_tokens, ref_decoded = _openvla_reference(a)
    tokens = tok.to_token_ids(tok.encode(a), 32000)
    assert tokens.tolist() == ref_tokens.tolist()
    assert np.allclose(tok.decode(tok.from_token_ids(tokens, 32000)), ref_decoded)


def test_openvla_with_statistics_masks_gripper():
    q01 = np.array([-0.02, -0.04, 0.0])
    q99 = np.array([0.02, 0.04, 1.0])
    tok = ActionTokenizer.openvla(q01, q99, mask=[True, True, False])
    a = np.array([[0.0, 0.04, 1.0], [-0.02, 0.0, 0.0]])
    # dims 0-1: 2 (a - q01) / (q99 - q01 + 1e-8) - 1 (then clipped); dim 2 (gripper) unchanged
    norm = tok.normalize(a)
    expected = np.array(
        [
            [2 * 0.02 / (0.04 + 1e-8) - 1, 2 * 0.08 / (0.08 + 1e-8) - 1, 1.0],
            [-1.0, 2 * 0.04 / (0.08 + 1e-8) - 1, 0.0],
        ]
    )
    assert np.allclose(norm, expected)
    # decode: 0.5 (x + 1)(q99 - q01) + q01 on masked dims, x on the gripper
    centres = tok.bin_centers[tok.encode(a)]
    expected_dec = np.where([True, True, False], 0.5 * (centres + 1) * (q99 - q01) + q01, centres)
    assert np.allclose(tok.decode(tok.encode(a)), expected_dec)


# --- normalisation ---------------------------------------------------------------


def test_fit_quantile_by_hand():
    # one dimension holding 0..100: np.quantile's linear rule gives q01 = 1, q99 = 99
    data = np.stack([np.arange(101.0), np.full(101, 5.0)], axis=1)
    tok = ActionTokenizer.fit(data, "quantile")
    assert tok.norm_low.tolist() == pytest.approx([1.0, 5.0])
    assert tok.norm_high.tolist() == pytest.approx([99.0, 5.0])
    assert tok.constant.tolist() == [False, True]
    # 1 -> -1 -> bin 0; 99 -> 1 -> bin 255; 200 clips to 1 -> bin 255; -50 -> bin 0;
    # 50 -> 2 * 49 / 98 - 1 = 0 -> bin 128
    a = np.array([[1.0, 5.0], [99.0, 5.0], [200.0, 5.0], [-50.0, 5.0], [50.0, 5.0]])
    bins = tok.encode(a)
    assert bins[:, 0].tolist() == [0, 255, 255, 0, 128]
    # the constant dimension normalises to 0 (bin 128) and decodes to its value
    assert bins[:, 1].tolist() == [128] * 5
    assert tok.decode(bins)[:, 1].tolist() == [5.0] * 5


def test_fit_minmax_by_hand():
    data = np.array([[-2.0], [0.0], [6.0]])
    tok = ActionTokenizer.fit(data, "minmax", n_bins=4)
    # [-2, 6] -> [-1, 1]; 4 bins of width 2 in raw units: [-2,0) [0,2) [2,4) [4,6]
    assert tok.encode([[-2.0], [0.0], [1.9], [3.0], [6.0]]).ravel().tolist() == [0, 1, 1, 2, 3]
    assert tok.decode([[0], [3]]).ravel().tolist() == pytest.approx([-1.0, 5.0])


@settings(max_examples=80, deadline=None)
@given(
    n_bins=st.integers(2, 512),
    scheme=st.sampled_from(["uniform", "openvla"]),
    values=st.lists(finite, min_size=1, max_size=40),
)
def test_roundtrip_within_half_a_bin(n_bins, scheme, values):
    tok = ActionTokenizer(n_bins=n_bins, scheme=scheme)
    a = np.array(values)
    err = np.abs(tok.decode(tok.encode(a)) - a)
    assert np.all(err <= tok.bin_width / 2 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n_bins=st.integers(2, 300),
    scheme=st.sampled_from(["uniform", "openvla"]),
    a=st.floats(-3, 3, allow_nan=False),
    b=st.floats(-3, 3, allow_nan=False),
)
def test_encode_and_decode_are_monotonic(n_bins, scheme, a, b):
    tok = ActionTokenizer(n_bins=n_bins, scheme=scheme)
    lo, hi = min(a, b), max(a, b)
    blo, bhi = tok.encode([lo, hi])
    assert blo <= bhi
    assert tok.decode([blo])[0] <= tok.decode([bhi])[0]
    assert 0 <= blo <= bhi <= n_bins - 1


@settings(max_examples=40, deadline=None)
@given(
    lows=st.lists(st.floats(-10, 10), min_size=1, max_size=7),
    spread=st.floats(0.1, 20),
    u=st.floats(0, 1),
)
def test_normalised_roundtrip_in_raw_units(lows, spread, u):
    lo = np.array(lows)
    hi = lo + spread
    tok = ActionTokenizer(normalization="minmax", norm_low=lo, norm_high=hi)
    a = lo + u * (hi - lo)
    err = np.abs(tok.decode(tok.encode(a)) - a)
    # half a bin in normalised units is (hi - lo) / 2 * width / 2 in raw units
    assert np.all(err <= (hi - lo) / 2 * tok.bin_width / 2 + 1e-6)


# --- persistence ------------------------------------------------------------------


@pytest.mark.parametrize(
    "tok",
    [
        ActionTokenizer(),
        ActionTokenizer.openvla(),
        ActionTokenizer.fit(
            np.random.default_rng(0).normal(size=(200, 7)), mask=[True] * 6 + [False]
        ),
        ActionTokenizer.fit(np.random.default_rng(1).normal(size=(50, 3)), "minmax", n_bins=32),
    ],
    ids=["default", "openvla", "quantile", "minmax"],
)
def test_state_dict_survives_weights_only_load(tok):
    buf = io.BytesIO()
    torch.save({"tokenizer": tok.state_dict()}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)["tokenizer"]
    back = ActionTokenizer.from_state_dict(loaded)
    assert back == tok
    a = np.random.default_rng(2).uniform(-2, 2, size=(20, tok.action_dim or 7))
    assert np.array_equal(back.encode(a), tok.encode(a))
    assert np.array_equal(back.decode(back.encode(a)), tok.decode(tok.encode(a)))


def test_from_state_dict_rejects_other_formats():
    with pytest.raises(DataError, match="format"):
        ActionTokenizer.from_state_dict({"format": "something/else"})
    state = ActionTokenizer().state_dict()
    del state["n_bins"]
    with pytest.raises(DataError, match="n_bins"):
        ActionTokenizer.from_state_dict(state)


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_bins": 1},
        {"n_bins": 2.5},
        {"low": 1.0, "high": -1.0},
        {"scheme": "fancy"},
        {"normalization": "zscore"},
        {"normalization": "quantile"},
        {"normalization": "minmax", "norm_low": [0.0, 1.0], "norm_high": [1.0, 0.0]},
        {"normalization": "minmax", "norm_low": [0.0], "norm_high": [np.nan]},
    ],
)
def test_bad_construction(kwargs):
    with pytest.raises(UsageError):
        ActionTokenizer(**kwargs)


def test_bad_actions_and_bins():
    tok = ActionTokenizer.fit(np.random.default_rng(0).normal(size=(30, 3)))
    with pytest.raises(UsageError, match="NaN"):
        tok.encode([[0.0, np.nan, 0.0]])
    with pytest.raises(UsageError, match="dimensions"):
        tok.encode([[0.0, 0.0]])
    with pytest.raises(UsageError, match=r"0\.\.255"):
        tok.decode([[0, 0, 256]])
    with pytest.raises(UsageError, match="integers"):
        tok.decode([[0.5, 0, 0]])
    with pytest.raises(UsageError):
        tok.to_token_ids([0], vocab_size=100)
