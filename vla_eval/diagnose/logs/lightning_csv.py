"""A Lightning CSVLogger ``metrics.csv`` -> `Series`.

Lightning writes one row per logging call: ``step``, often ``epoch``, and a column per
metric, blank where that row did not log it (training and validation rows are apart).
Non-finite values are written as ``nan`` / ``inf``. Standard library only.
"""

from __future__ import annotations

import csv
from pathlib import Path

from vla_eval.diagnose.logs import Series
from vla_eval.errors import DataError, UsageError

_SKIP = {"step", "epoch"}


def read_csv(path: Path) -> Series:
    """Every metric column of ``path`` as (step, value) series.

    Raises:
        DataError: no ``step`` column, or a cell that is neither blank nor a number.
    """
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    if not rows or "step" not in rows[0]:
        header = ", ".join(rows[0]) if rows else "(empty file)"
        raise DataError(
            f"{path}: expected a Lightning metrics.csv with a 'step' column; header: {header}"
        )
    header = rows[0]
    step_col = header.index("step")
    tags: dict[str, dict[int, float]] = {name: {} for name in header if name not in _SKIP}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} cells for {len(header)} columns")
        step = _cell(row[step_col], path, line, "step")
        if step is None or not step.is_integer() or step < 0:
            raise DataError(f"{path}:{line}: 'step' must be an integer >= 0, got {row[step_col]!r}")
        for name, cell in zip(header, row, strict=True):
            if name in _SKIP:
                continue
            value = _cell(cell, path, line, name)
            if value is not None:
                tags[name][int(step)] = value
    series = {name: sorted(values.items()) for name, values in tags.items() if values}
    return Series(str(path), "lightning-csv", series)


def _cell(text: str, path: Path, line: int, column: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{line}: '{column}' must be a number, got {text!r}") from None
    return value
