"""What every figure shares: writing it to a PNG atomically and closing it.

Must never import torch or any vla-eval module but the foundations (`vla_eval.results`,
whose `save_figure` is the one atomic write for figures).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.figure
import matplotlib.pyplot as plt

from vla_eval.results import save_figure


def save(fig: matplotlib.figure.Figure, path: str | os.PathLike[str]) -> Path:
    """Write `fig` to `path` (150 dpi, tight bounding box) atomically, creating folders; close it.

    A kill while drawing or writing leaves the previous file (or none), never a 0-byte
    or partial PNG.
    """
    try:
        return save_figure(fig, path, dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
