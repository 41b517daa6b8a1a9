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


def timed_snippet_indices(pts: np.ndarray, end: int, n_snippets: int = 6,
                          snippet_len: int = 16) -> np.ndarray:
    """:func:`snippet_indices` by time: int64 (S, L) positions in a timeline of sorted frame
    times `pts` (T,) whose last frame ends at `end` (integers in one time base).

    Point k is the frame shown at the centre of the k-th of S*L equal slices of
    [pts[0], end): the last frame with ``2 S L (pts_i - pts_0) <= (2k + 1) (end - pts_0)``.
    A clip at a constant frame rate gets exactly :func:`snippet_indices` (T); a variable
    rate one gets snippets that cover the same time spans as the audio segments.
    """
    points, origin, span = _slices(pts, end, n_snippets, snippet_len)
    k = np.arange(points, dtype=np.int64)
    idx = np.searchsorted(2 * points * origin, (2 * k + 1) * span, side="right") - 1
    return np.maximum(idx, 0).reshape(n_snippets, snippet_len)


def timed_slices(pts: np.ndarray, end: int, n_snippets: int, snippet_len: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) int64 (S*L,): the frames whose end time falls in each of the S*L time slices
    (frame i ends where frame i + 1 starts, the last at `end`); an empty slice keeps the
    frame shown at its start (hi = lo + 1). At a constant rate these are the index slices
    ``[k T // (S L), (k + 1) T // (S L))`` of :func:`mmer.features.video.jittered_indices`."""
    points, origin, span = _slices(pts, end, n_snippets, snippet_len)
    ends = np.append(origin[1:], span)
    k = np.arange(points + 1, dtype=np.int64)
    bounds = np.searchsorted(points * ends, k * span, side="right")
    lo = np.minimum(bounds[:-1], len(pts) - 1)
    return lo, np.maximum(bounds[1:], lo + 1)


def _slices(pts: np.ndarray, end: int, n_snippets: int, snippet_len: int
            ) -> tuple[int, np.ndarray, int]:
    snippet_indices(max(len(pts), 1), n_snippets, snippet_len)  # checks the counts
    pts = np.asarray(pts, dtype=np.int64)
    if pts.ndim != 1 or pts.size == 0 or np.any(np.diff(pts) < 0) or end <= pts[-1]:
        raise BadInput(f"timed snippets: pts must be sorted (T,) with T >= 1 and end after "
                       f"the last, got {pts.shape} ending {end}")
    return n_snippets * snippet_len, pts - pts[0], int(end - pts[0])


def frame_grid(pts: np.ndarray, end: int) -> tuple[np.ndarray, int]:
    """(0..T-1, T) when the timeline `pts` (T,) sorted, ending at `end`, is a constant frame
    rate up to the time base's rounding (every frame within one tick of the evenly spaced
    grid from the first frame to the last: FLV and Matroska store milliseconds), else (`pts`, `end`) unchanged. So a
    constant-rate clip's frames are chosen by index exactly as :func:`snippet_indices` does."""
    pts = np.asarray(pts, dtype=np.int64)
    count = len(pts)
    if count == 0:
        return pts, end
    grid = np.arange(count) * ((pts[-1] - pts[0]) / max(count - 1, 1))
    if np.abs((pts - pts[0]) - grid).max() <= 1.0 + 1e-9:
        return np.arange(count, dtype=np.int64), count
    return pts, end
