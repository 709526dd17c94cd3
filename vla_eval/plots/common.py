"""What every figure shares: writing it to a PNG and closing it.

Must never import torch or any other vla-eval module.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.figure
import matplotlib.pyplot as plt


def save(fig: matplotlib.figure.Figure, path: str | os.PathLike[str]) -> Path:
    """Write `fig` to `path` (150 dpi, tight bounding box), creating folders, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path
