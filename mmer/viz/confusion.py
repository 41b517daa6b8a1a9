"""Confusion matrices as PNG: counts beside row-normalised rates (recall on the diagonal)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from mmer.errors import BadInput
from mmer.io import atomic_path  # noqa: E402


def row_normalise(cm: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix (K, K) divided by its total; empty rows stay zero."""
    cm = np.asarray(cm, dtype=np.float64)
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)


def save_png(fig: plt.Figure, path: str | Path) -> Path:
    """Lay out `fig`, write it atomically as a PNG at `path`, and close it."""
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return Path(path)


def plot_confusion(cm: np.ndarray, label_names: Sequence[str], path: str | Path,
                   *, title: str = "Confusion matrix") -> Path:
    """Save counts and row-normalised panels of `cm` (K, K; rows true, columns predicted)."""
    cm = np.asarray(cm)
    k = len(label_names)
    if cm.shape != (k, k):
        raise BadInput(f"confusion matrix shape {cm.shape} does not match {k} labels")
    side = max(4.5, 0.6 * k + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1.0, side))
    panels = [(cm.astype(np.int64), "counts", "d"), (row_normalise(cm), "row-normalised (recall)", ".2f")]
    for ax, (matrix, name, fmt) in zip(axes, panels, strict=True):
        disp = ConfusionMatrixDisplay(matrix, display_labels=list(label_names))
        disp.plot(ax=ax, cmap="Blues", values_format=fmt, colorbar=False, xticks_rotation=45)
        ax.set_title(name)
    fig.suptitle(f"{title} (n={int(cm.sum())})")
    return save_png(fig, path)
