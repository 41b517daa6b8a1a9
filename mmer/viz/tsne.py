"""t-SNE map of embeddings, one panel per way of colouring the points (emotion, actor, ...)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402  (a scikit-learn dependency)

from mmer.errors import BadInput
from mmer.viz.confusion import save_png  # noqa: E402

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Colouring:
    """How to colour the points of one panel: the panel title, a name per point, and
    the legend order (default: sorted names; names absent from `values` are left out)."""

    title: str
    values: Sequence[str]
    order: Sequence[str] | None = None


def tsne_2d(emb: np.ndarray, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """Project embeddings (N, D) to 2-D points (N, 2) with scikit-learn's t-SNE.

    The perplexity must stay below N; for small sets it is lowered to (N - 1) / 3
    (logged), so a handful of test clips still gives a map. Runs on one thread.
    """
    emb = np.asarray(emb, dtype=np.float32)
    n = len(emb)
    if n < 3:
        raise BadInput(f"t-SNE needs at least 3 points, got {n}")
    usable = min(perplexity, (n - 1) / 3)
    if usable < perplexity:
        log.info("t-SNE perplexity lowered from %g to %.3g for %d points", perplexity, usable, n)
    tsne = TSNE(n_components=2, perplexity=usable, init="pca", random_state=seed,
                learning_rate="auto")
    # One thread: for the few hundred clips of a test fold it is fast, and OpenMP threads
    # spinning on a busy shared machine made the same call 20x slower.
    with threadpool_limits(limits=1):
        return tsne.fit_transform(emb)


def _palette(n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "turbo")
    return [cmap(i) if n <= 20 else cmap(i / max(n - 1, 1)) for i in range(n)]


def _panel(ax: plt.Axes, points: np.ndarray, colouring: Colouring) -> None:
    values = np.asarray([str(v) for v in colouring.values])
    present = set(values.tolist())
    names = [n for n in (colouring.order or sorted(present)) if n in present]
    names += sorted(present - set(names))
    for name, colour in zip(names, _palette(len(names)), strict=True):
        mask = values == name
        ax.scatter(points[mask, 0], points[mask, 1], s=22, color=colour, label=name,
                   edgecolors="white", linewidths=0.4)
    ax.set_title(colouring.title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
              ncol=1 if len(names) <= 12 else 2, markerscale=1.2)


def plot_tsne(points: np.ndarray, colourings: Sequence[Colouring], path: str | Path,
              *, title: str = "t-SNE of test embeddings") -> Path:
    """Save a PNG with one scatter panel of `points` (N, 2) per colouring; returns the path."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise BadInput(f"points must be (N, 2), got {points.shape}")
    for colouring in colourings:
        if len(colouring.values) != len(points):
            raise BadInput(f"panel '{colouring.title}': {len(colouring.values)} values "
                             f"for {len(points)} points")
    fig, axes = plt.subplots(1, len(colourings), figsize=(6.2 * len(colourings), 5.0),
                             squeeze=False)
    for ax, colouring in zip(axes[0], colourings, strict=True):
        _panel(ax, points, colouring)
    fig.suptitle(f"{title} (n={len(points)})")
    return save_png(fig, path)
