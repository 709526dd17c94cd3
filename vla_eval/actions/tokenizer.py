"""Action tokenisation: continuous robot actions <-> discrete bins (`ActionTokenizer`).

A VLA that predicts actions as tokens (RT-2, OpenVLA and this project's TinyVLA)
normalises each action dimension to [-1, 1], cuts that range into uniform bins and
trains cross-entropy over the bin index; at inference the predicted bin is decoded to
its centre and un-normalised. `ActionTokenizer` does both directions, fits the
normalisation statistics from data (quantiles q01/q99 like OpenVLA, or min/max) and
round-trips through `state_dict()` as plain Python data, so a checkpoint that holds it
still loads with `torch.load(weights_only=True)`. numpy only: this module must not
import torch (or anything of the package but its errors), so offline scoring of
another model's predictions stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from vla_eval.errors import DataError, UsageError

Normalization = Literal["none", "quantile", "minmax"]
Scheme = Literal["uniform", "openvla"]

NORMALIZATIONS: tuple[str, ...] = ("none", "quantile", "minmax")
SCHEMES: tuple[str, ...] = ("uniform", "openvla")
STATE_FORMAT = "vla-eval/action-tokenizer/1"

# OpenVLA divides by (high - low + 1e-8) so that a zero spread does not divide by zero.
_NORM_EPS = 1e-8


class ActionTokenizer:
    """Per-dimension normalisation plus uniform binning of continuous actions.

    Two binning schemes:

    * ``"uniform"`` (the default): ``n_bins`` equal cells over ``[low, high]``;
      ``bin = floor((a - low) / (high - low) * n_bins)`` clipped to ``0 .. n_bins - 1``,
      decoded to the cell centre ``low + (bin + 0.5) * width``. With the defaults
      (256 bins over [-1, 1]) that is ``floor((a + 1) / 2 * 256)``.
    * ``"openvla"``: OpenVLA's tokenizer (``prismatic/vla/action_tokenizer.py``):
      ``n_bins`` *edges* ``np.linspace(-1, 1, n_bins)``, ``np.digitize`` of the clipped
      action, giving indices 1..n_bins; decoding clips ``index - 1`` to
      ``0 .. n_bins - 2`` and returns the centre of that interval. So 256 tokens carry
      only 255 distinct values, and token 255 (action exactly 1.0) decodes like 254.
      Here the bin is ``digitize - 1`` (0..n_bins-1); `to_token_ids` maps it onto the
      end of a language model's vocabulary as OpenVLA does (``vocab_size - 1 - bin``).

    Normalisation happens first, per action dimension: ``"quantile"`` maps
    [q01, q99] to [-1, 1] and clips (OpenVLA's ``BOUNDS_Q99``), ``"minmax"`` maps
    [min, max] to [-1, 1], ``"none"`` leaves actions as they are (they are still
    clipped to ``[low, high]`` by the binning). Dimensions where ``mask`` is False are
    not normalised (OpenVLA leaves the gripper alone this way); a dimension whose
    statistics are constant is mapped to 0, as OpenVLA does.

    Args:
        n_bins: number of bins (tokens) per action dimension, >= 2.
        low: lower end of the binned range (in normalised units).
        high: upper end of the binned range.
        scheme: ``"uniform"`` or ``"openvla"``.
        normalization: ``"none"``, ``"quantile"`` or ``"minmax"``.
        norm_low: per-dimension lower statistic (q01 or min), shape (D,).
        norm_high: per-dimension upper statistic (q99 or max), shape (D,).
        mask: per-dimension bool, True where the dimension is normalised; default all.
        constant: per-dimension bool, True where the data never varies (mapped to 0);
            by default ``norm_low == norm_high``.

    Example:
        >>> tok = ActionTokenizer()
        >>> tok.encode([-1.0, 0.0, 0.999, 1.0]).tolist()
        [0, 128, 255, 255]
        >>> tok.decode([0, 128]).round(5).tolist()
        [-0.99609, 0.00391]
    """

    def __init__(
        self,
        n_bins: int = 256,
        low: float = -1.0,
        high: float = 1.0,
        scheme: Scheme = "uniform",
        normalization: Normalization = "none",
        norm_low: Sequence[float] | np.ndarray | None = None,
        norm_high: Sequence[float] | np.ndarray | None = None,
        mask: Sequence[bool] | np.ndarray | None = None,
        constant: Sequence[bool] | np.ndarray | None = None,
    ) -> None:
        if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
            raise UsageError(f"n_bins must be an integer >= 2, got {n_bins!r}")
        low, high = float(low), float(high)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise UsageError(f"the binned range needs finite low < high, got [{low}, {high}]")
        if scheme not in SCHEMES:
            raise UsageError(f"unknown binning scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
        if normalization not in NORMALIZATIONS:
            raise UsageError(
                f"unknown normalization {normalization!r}; use one of {', '.join(NORMALIZATIONS)}"
            )
        self.n_bins = int(n_bins)
        self.low = low
        self.high = high
        self.scheme: Scheme = scheme
        self.normalization: Normalization = normalization
        self.norm_low: np.ndarray | None = None
        self.norm_high: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.constant: np.ndarray | None = None
        if normalization == "none":
            if norm_low is not None or norm_high is not None:
                raise UsageError("normalization='none' takes no norm_low/norm_high statistics")
            if mask is not None:
                self.mask = _bool_vector(mask, "mask")
            return
        if norm_low is None or norm_high is None:
            raise UsageError(
                f"normalization={normalization!r} needs per-dimension norm_low and norm_high "
                "(or build it with ActionTokenizer.fit(actions))"
            )
        lo = np.asarray(norm_low, dtype=np.float64)
        hi = np.asarray(norm_high, dtype=np.float64)
        if lo.ndim != 1 or lo.shape != hi.shape or lo.size == 0:
            raise UsageError(
                f"norm_low and norm_high must be vectors of equal length, got shapes {lo.shape} and {hi.shape}"
            )
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise UsageError("normalisation statistics must be finite")
        if np.any(hi < lo):
            bad = int(np.flatnonzero(hi < lo)[0])
            raise UsageError(f"norm_high < norm_low for action dimension {bad}")
        self.norm_low, self.norm_high = lo, hi
        dims = lo.size
        self.mask = np.ones(dims, bool) if mask is None else _bool_vector(mask, "mask", dims)
        self.constant = lo == hi if constant is None else _bool_vector(constant, "constant", dims)

    # --- constructors ---------------------------------------------------------

    @classmethod
    def fit(
        cls,
        actions: Any,
        normalization: Normalization = "quantile",
        n_bins: int = 256,
        scheme: Scheme = "uniform",
        mask: Sequence[bool] | np.ndarray | None = None,
    ) -> ActionTokenizer:
        """Fit normalisation statistics over the last axis of `actions`.

        Args:
            actions: (..., D) continuous actions from the training set; all leading
                axes (episodes, steps, chunk steps) are pooled.
            normalization: ``"quantile"`` (q01/q99, linear interpolation like
                ``np.quantile``) or ``"minmax"``.
            n_bins: bins per dimension.
            scheme: ``"uniform"`` or ``"openvla"``.
            mask: per-dimension bool, True where the dimension is normalised.

        Returns:
            A tokenizer whose ``constant`` flags mark dimensions with min == max.
        """
        a = as_actions(actions)
        flat = a.reshape(-1, a.shape[-1])
        if flat.shape[0] == 0:
            raise UsageError("cannot fit action statistics on zero actions")
        if normalization == "quantile":
            lo, hi = np.quantile(flat, [0.01, 0.99], axis=0)
        elif normalization == "minmax":
            lo, hi = flat.min(axis=0), flat.max(axis=0)
        else:
            raise UsageError(
                f"fit needs normalization 'quantile' or 'minmax', got {normalization!r}"
            )
        # OpenVLA zeroes a dimension only when the data never varies (min == max),
        # even if its q01 == q99.
        constant = flat.min(axis=0) == flat.max(axis=0)
        return cls(
            n_bins=n_bins,
            scheme=scheme,
            normalization=normalization,
            norm_low=lo,
            norm_high=hi,
            mask=mask,
            constant=constant,
        )

    @classmethod
    def openvla(
        cls,
        q01: Sequence[float] | np.ndarray | None = None,
        q99: Sequence[float] | np.ndarray | None = None,
        mask: Sequence[bool] | np.ndarray | None = None,
        n_bins: int = 256,
        constant: Sequence[bool] | np.ndarray | None = None,
    ) -> ActionTokenizer:
        """OpenVLA's action tokenisation, exactly.

        Without statistics the actions are taken as already normalised to [-1, 1]
        (what OpenVLA's ``ActionTokenizer`` itself sees). With ``q01``/``q99`` (from a
        dataset's ``dataset_statistics.json``) each dimension is first mapped with
        ``clip(2 * (a - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)`` where ``mask`` is True,
        and decoded with ``0.5 * (x + 1) * (q99 - q01) + q01``. For the usual 7-D
        end-effector datasets OpenVLA's mask is ``[True] * 6 + [False]``: the gripper
        is binned as given. ``constant`` (the statistics' ``min == max``) marks unused
        dimensions, which OpenVLA maps to 0.

        Differences from the default tokenizer: 256 edges rather than 256 cells, so the
        bin width is 2/255 instead of 2/256, only 255 distinct decoded values, and the
        top token shares its centre with the one below it.

        >>> tok = ActionTokenizer.openvla()
        >>> tok.encode([-1.0, 0.0, 1.0]).tolist()
        [0, 127, 255]
        >>> tok.to_token_ids(tok.encode([-1.0, 1.0]), vocab_size=32000).tolist()
        [31999, 31744]
        """
        if (q01 is None) != (q99 is None):
            raise UsageError("give both q01 and q99, or neither")
        if q01 is None:
            return cls(n_bins=n_bins, scheme="openvla", mask=mask)
        lo = np.asarray(q01, dtype=np.float64)
        return cls(
            n_bins=n_bins,
            scheme="openvla",
            normalization="quantile",
            norm_low=lo,
            norm_high=q99,
            mask=mask,
            constant=np.zeros(lo.shape, bool) if constant is None else constant,
        )

    # --- geometry -------------------------------------------------------------

    @property
    def bin_edges(self) -> np.ndarray:
        """Edges of the bins in normalised units.

        ``"uniform"``: n_bins + 1 edges; ``"openvla"``: n_bins edges (OpenVLA's
        ``np.linspace(-1, 1, n_bins)``).
        """
        if self.scheme == "openvla":
            return np.linspace(self.low, self.high, self.n_bins)
        return np.linspace(self.low, self.high, self.n_bins + 1)

    @property
    def bin_centers(self) -> np.ndarray:
        """Decoded value of every bin index 0..n_bins-1 (normalised units), shape (n_bins,)."""
        edges = self.bin_edges
        centers = (edges[:-1] + edges[1:]) / 2.0
        if self.scheme == "openvla":
            # OpenVLA's decode clips the index to n_bins - 2: the top bin repeats the last centre.
            centers = np.append(centers, centers[-1])
        return centers

    @property
    def bin_width(self) -> float:
        """Width of one bin in normalised units."""
        cells = self.n_bins - 1 if self.scheme == "openvla" else self.n_bins
        return (self.high - self.low) / cells

    @property
    def action_dim(self) -> int | None:
        """Number of action dimensions the statistics describe, or None if any."""
        if self.norm_low is not None:
            return int(self.norm_low.size)
        return None if self.mask is None else int(self.mask.size)

    # --- normalisation --------------------------------------------------------

    def normalize(self, actions: Any) -> np.ndarray:
        """Map raw actions (..., D) to normalised units (clipped to [-1, 1] if normalised)."""
        a = as_actions(actions)
        if self.normalization == "none":
            return a.astype(np.float64, copy=True)
        lo, hi = self._stats(a)
        if self.scheme == "openvla":
            span = hi - lo + _NORM_EPS  # OpenVLA's exact arithmetic
        else:
            # Exact bin boundaries; the epsilon only guards a zero spread.
            span = np.where(hi > lo, hi - lo, _NORM_EPS)
        out = np.clip(2.0 * (a - lo) / span - 1.0, -1.0, 1.0)
        out = np.where(self.mask, out, a)
        return np.where(self.constant, 0.0, out)

    def unnormalize(self, normalized: Any) -> np.ndarray:
        """Inverse of `normalize` for values inside the normalised range, shape (..., D)."""
        x = as_actions(normalized)
        if self.normalization == "none":
            return x.astype(np.float64, copy=True)
        lo, hi = self._stats(x)
        out = np.where(self.mask, 0.5 * (x + 1.0) * (hi - lo) + lo, x)
        # A constant dimension has one value; return it rather than a made-up spread.
        return np.where(self.constant & self.mask, lo, out)

    # --- tokens ---------------------------------------------------------------

    def encode(self, actions: Any) -> np.ndarray:
        """Raw actions (..., D) -> bin indices (..., D), int64 in 0..n_bins-1."""
        x = self.normalize(actions)
        x = np.clip(x, self.low, self.high)
        if self.scheme == "openvla":
            bins = np.digitize(x, self.bin_edges) - 1
        else:
            bins = np.floor((x - self.low) / (self.high - self.low) * self.n_bins)
        return np.clip(bins, 0, self.n_bins - 1).astype(np.int64)

    def decode(self, bins: Any) -> np.ndarray:
        """Bin indices (..., D) -> raw actions at the bin centres (..., D), float64."""
        b = np.asarray(bins)
        if b.dtype.kind not in "iu":
            if b.dtype.kind != "f" or not np.all(np.isfinite(b)) or np.any(b != np.round(b)):
                raise UsageError("bin indices must be integers")
            b = b.astype(np.int64)
        if b.size and (b.min() < 0 or b.max() >= self.n_bins):
            raise UsageError(
                f"bin indices must lie in 0..{self.n_bins - 1}, got {int(b.min())}..{int(b.max())}"
            )
        return self.unnormalize(self.bin_centers[b])

    def to_token_ids(self, bins: Any, vocab_size: int) -> np.ndarray:
        """Bin indices -> ids in the last n_bins entries of a language model's vocabulary.

        The ``"openvla"`` scheme counts down from the end (bin 0 -> ``vocab_size - 1``)
        as OpenVLA does; ``"uniform"`` counts up (bin 0 -> ``vocab_size - n_bins``).
        """
        b = np.asarray(bins, dtype=np.int64)
        self._check_vocab(vocab_size)
        if self.scheme == "openvla":
            return vocab_size - 1 - b
        return vocab_size - self.n_bins + b

    def from_token_ids(self, token_ids: Any, vocab_size: int) -> np.ndarray:
        """Inverse of `to_token_ids`; ids outside the action range are clipped to it."""
        t = np.asarray(token_ids, dtype=np.int64)
        self._check_vocab(vocab_size)
        b = vocab_size - 1 - t if self.scheme == "openvla" else t - (vocab_size - self.n_bins)
        return np.clip(b, 0, self.n_bins - 1)

    # --- persistence ----------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain-data description (str, int, float, lists): safe under weights_only loads.

        ``bin_edges`` is included for readers that do not use this class; it is
        recomputed, not trusted, on load.
        """

        def vec(v: np.ndarray | None) -> list | None:
            return None if v is None else v.tolist()

        return {
            "format": STATE_FORMAT,
            "n_bins": self.n_bins,
            "low": self.low,
            "high": self.high,
            "scheme": self.scheme,
            "normalization": self.normalization,
            "norm_low": vec(self.norm_low),
            "norm_high": vec(self.norm_high),
            "mask": vec(self.mask),
            "constant": vec(self.constant),
            "bin_edges": self.bin_edges.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> ActionTokenizer:
        """Rebuild a tokenizer from `state_dict()` output (lists or tensors accepted)."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise DataError(
                f"not an action tokenizer state (format {found!r}, expected {STATE_FORMAT!r})"
            )

        def vec(key: str) -> np.ndarray | None:
            v = state.get(key)
            return None if v is None else np.asarray(v.tolist() if hasattr(v, "tolist") else v)

        try:
            return cls(
                n_bins=int(state["n_bins"]),
                low=float(state["low"]),
                high=float(state["high"]),
                scheme=state["scheme"],
                normalization=state["normalization"],
                norm_low=vec("norm_low"),
                norm_high=vec("norm_high"),
                mask=vec("mask"),
                constant=vec("constant"),
            )
        except KeyError as exc:
            raise DataError(f"action tokenizer state lacks {exc.args[0]!r}") from None

    def __repr__(self) -> str:
        dims = self.action_dim
        return (
            f"ActionTokenizer(n_bins={self.n_bins}, range=[{self.low:g}, {self.high:g}], "
            f"scheme={self.scheme!r}, normalization={self.normalization!r}"
            + ("" if dims is None else f", dims={dims}")
            + ")"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActionTokenizer):
            return NotImplemented
        a, b = self.state_dict(), other.state_dict()
        return a == b

    __hash__ = None  # type: ignore[assignment]

    # --- internals ------------------------------------------------------------

    def _stats(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.norm_low is not None and self.norm_high is not None
        if a.shape[-1] != self.norm_low.size:
            raise UsageError(
                f"actions have {a.shape[-1]} dimensions but the tokenizer's statistics have "
                f"{self.norm_low.size}"
            )
        return self.norm_low, self.norm_high

    def _check_vocab(self, vocab_size: int) -> None:
        if int(vocab_size) < self.n_bins:
            raise UsageError(f"vocab_size {vocab_size} is smaller than n_bins {self.n_bins}")


# --- helpers ------------------------------------------------------------------


def as_actions(actions: Any) -> np.ndarray:
    """Actions (..., D) as a finite float64 array (a torch tensor is converted without torch)."""
    if hasattr(actions, "detach"):  # a torch tensor, converted without importing torch
        actions = actions.detach().cpu().numpy()
    a = np.asarray(actions)
    if a.ndim == 0:
        raise UsageError("actions must have at least one dimension (..., D)")
    if a.dtype.kind not in "fiub":
        raise UsageError(f"actions must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64, copy=False)
    if not np.all(np.isfinite(a)):
        raise UsageError("actions contain NaN or infinite values")
    return a


def _bool_vector(v: Any, name: str, dims: int | None = None) -> np.ndarray:
    arr = np.asarray(v.tolist() if hasattr(v, "tolist") else v)
    if arr.ndim != 1 or (dims is not None and arr.size != dims):
        want = "a vector" if dims is None else f"a vector of {dims} values"
        raise UsageError(f"{name} must be {want}, got shape {arr.shape}")
    if arr.dtype.kind != "b" and not np.all(np.isin(arr, (0, 1))):
        raise UsageError(f"{name} must hold booleans")
    return arr.astype(bool)
