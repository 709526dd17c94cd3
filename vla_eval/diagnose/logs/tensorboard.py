"""TensorBoard event files -> `Series`, read with tensorboard's own ``EventAccumulator``.

Scalars written by ``torch.utils.tensorboard.SummaryWriter`` (Lightning's and Hugging
Face's TensorBoard loggers use it) and one-value tensors written by TensorFlow 2's
``tf.summary.scalar`` are read; images, histograms and text are not. A step logged
twice (a run resumed from a checkpoint) keeps its last value. tensorboard is imported
here only; this module must not import torch.
"""

from __future__ import annotations

from pathlib import Path

from vla_eval.diagnose.logs import Series
from vla_eval.errors import DataError, UsageError

EVENTS = "events.out.tfevents*"


def run_dir(path: Path) -> Path:
    """The one event file or run directory under ``path`` to read.

    Raises:
        UsageError: no event files, or several runs (the message lists them).
    """
    if path.is_file() or any(path.glob(EVENTS)):
        return path
    runs = sorted({p.parent for p in path.rglob(EVENTS)})
    if not runs:
        raise UsageError(f"{path} holds no TensorBoard event files ({EVENTS})")
    if len(runs) > 1:
        names = ", ".join(str(r.relative_to(path)) for r in runs[:10])
        raise UsageError(f"{path} holds {len(runs)} TensorBoard runs; pass one of: {names}")
    return runs[0]


def read_tensorboard(path: Path) -> Series:
    """Every scalar series of one TensorBoard run (a directory or one event file)."""
    try:
        from tensorboard.backend.event_processing import event_accumulator as ea
        from tensorboard.util import tensor_util
    except ImportError:
        raise UsageError(
            "reading TensorBoard logs needs tensorboard: pip install 'vla-eval[trackers]'"
        ) from None
    source = run_dir(path)
    accumulator = ea.EventAccumulator(str(source), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    try:
        accumulator.Reload()
    except Exception as exc:  # a corrupt file: tensorboard raises its own error types
        raise DataError(f"{source}: cannot read its TensorBoard events: {exc}") from None
    tags: dict[str, dict[int, float]] = {}
    available = accumulator.Tags()
    for tag in available.get("scalars", []):
        values = tags.setdefault(tag, {})
        for event in accumulator.Scalars(tag):
            values[int(event.step)] = float(event.value)
    for tag in available.get("tensors", []):
        for event in accumulator.Tensors(tag):
            array = tensor_util.make_ndarray(event.tensor_proto)
            if array.size == 1 and array.dtype.kind in "fiu":
                tags.setdefault(tag, {})[int(event.step)] = float(array.reshape(-1)[0])
    series = {tag: sorted(values.items()) for tag, values in tags.items() if values}
    return Series(str(source), "tensorboard", series)
