"""Which frames make up the video snippets of a clip: a pure function of its length."""
from __future__ import annotations

import numpy as np

from mmer.errors import BadInput


def snippet_indices(n_frames: int, n_snippets: int = 6, snippet_len: int = 16) -> np.ndarray:
    """Frame indices int64 (S, L) of `n_snippets` snippets of `snippet_len` frames.

    The clip is cut into S equal parts and snippet s samples L evenly spaced
    points of part s: point k of the S*L points sits at the centre of the k-th
    of S*L equal slices of the clip, ``floor((k + 1/2) * n_frames / (S*L))``.
    So snippet s covers the s-th S-th of the clip (the same span as audio
    segment s), a clip of exactly S*L frames uses every frame once, longer clips
    stride evenly, and shorter ones repeat frames. The result is monotone
    non-decreasing and within ``[0, n_frames)``. Computed in integers: exact.
    """
    for name, value in (("n_frames", n_frames), ("n_snippets", n_snippets),
                        ("snippet_len", snippet_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise BadInput(f"snippet_indices: {name} must be a positive integer, got {value!r}")
    points = n_snippets * snippet_len
    k = np.arange(points, dtype=np.int64)
    indices = ((2 * k + 1) * int(n_frames)) // (2 * points)
    return indices.reshape(n_snippets, snippet_len)
