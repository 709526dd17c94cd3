"""Gradient readings: per-parameter gradient norms of a model, read with one fused op.

`read_gradients` leaves the norms on the model's device (no host sync), so a training
step pays one small kernel; `first_nonfinite` and `largest` look into a reading only
when its total is not finite (a NaN/inf gradient, or a float32 total that overflowed
while every gradient is finite). torch is imported inside the functions, so importing
this module stays light; it must not import anything of the toolkit above diagnose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GradientReading:
    """Per-parameter gradient norms read from a model, still on its device.

    Attributes:
        names: parameter names, in registration order, of those with a gradient.
        norms: (parameters,) float32 tensor of their gradient norms.
        total: 0-d tensor, the total norm (the 2-norm of ``norms``).
    """

    names: tuple[str, ...]
    norms: Any
    total: Any


def read_gradients(named_parameters: Iterable[tuple[str, Any]]) -> GradientReading | None:
    """Per-parameter gradient norms with one fused op; no host sync.

    Args:
        named_parameters: (name, parameter) pairs, e.g. ``model.named_parameters()``;
            parameters without a gradient (frozen, or unused this step) are skipped.

    Returns:
        The reading, or None when no parameter has a gradient.
    """
    import torch

    names, grads = [], []
    for name, p in named_parameters:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            g = g.coalesce().values()
        names.append(name)
        grads.append(g.detach())
    if not grads:
        return None
    try:
        per_param = torch._foreach_norm(grads)
    except (AttributeError, RuntimeError):  # old torch, or tensors on mixed devices
        per_param = [torch.linalg.vector_norm(g) for g in grads]
    device = per_param[0].device
    norms = torch.stack([n.to(device=device, dtype=torch.float32) for n in per_param])
    return GradientReading(tuple(names), norms, torch.linalg.vector_norm(norms))


def first_nonfinite(reading: GradientReading) -> str | None:
    """Name of the first parameter whose gradient norm is NaN/inf (one host sync)."""
    import torch

    bad = (~torch.isfinite(reading.norms)).nonzero()
    return reading.names[int(bad[0, 0])] if bad.numel() else None


def largest(reading: GradientReading, k: int = 3) -> tuple[tuple[str, float], ...]:
    """(name, norm) of the ``k`` parameters with the largest gradient norms, largest first."""
    import torch

    values, index = torch.topk(reading.norms, min(k, reading.norms.numel()))
    return tuple(
        (reading.names[int(i)], float(v))
        for v, i in zip(values.tolist(), index.tolist(), strict=True)
    )
