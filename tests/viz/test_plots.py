"""Plots are written as real PNGs of a plausible size, and refuse mismatched input."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from mmer.viz.confusion import plot_confusion, row_normalise
from mmer.viz.tsne import Colouring, plot_tsne, tsne_2d

NAMES = ["neutral", "calm", "happy", "sad"]


def _open_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def test_tsne_png(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 6)
    emb = rng.normal(size=(24, 8)) + 4.0 * np.eye(8)[labels]
    points = tsne_2d(emb, perplexity=30.0, seed=0)  # perplexity above N: lowered, not an error
    assert points.shape == (24, 2) and np.isfinite(points).all()
    actors = [f"Actor {a:02d}" for a in np.tile([1, 2, 3], 8)]
    out = plot_tsne(points, [Colouring("emotion", [NAMES[i] for i in labels]),
                             Colouring("actor", actors)], tmp_path / "tsne.png")
    img = _open_png(out)
    assert img.shape[1] > 800 and img.shape[0] > 300  # two panels side by side
    # Not a blank canvas: coloured markers were drawn.
    assert img[..., :3].std() > 0.05


def test_tsne_is_seeded():
    emb = np.random.default_rng(1).normal(size=(12, 4))
    np.testing.assert_allclose(tsne_2d(emb, seed=3), tsne_2d(emb, seed=3))


def test_tsne_refuses_mismatch(tmp_path):
    with pytest.raises(ValueError):
        plot_tsne(np.zeros((5, 2)), [Colouring("emotion", ["a"] * 4)], tmp_path / "x.png")
    with pytest.raises(ValueError):
        tsne_2d(np.zeros((2, 4)))
    assert not (tmp_path / "x.png").exists()


def test_confusion_png(tmp_path):
    cm = np.array([[5, 1, 0, 0], [0, 4, 2, 0], [1, 0, 3, 0], [0, 0, 0, 0]])
    out = plot_confusion(cm, NAMES, tmp_path / "confusion.png", title="softmax head")
    img = _open_png(out)
    assert img.shape[1] > 700 and img.shape[0] > 350
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_row_normalise():
    cm = np.array([[3, 1], [0, 0]])
    np.testing.assert_allclose(row_normalise(cm), [[0.75, 0.25], [0.0, 0.0]])
    with pytest.raises(ValueError):
        plot_confusion(cm, NAMES, "unused.png")
