"""Snippet frame indices: shape, range, spread over the clip, repeats for short clips."""
from __future__ import annotations

import numpy as np
import pytest

from mmer.features.sampling import snippet_indices


@pytest.mark.parametrize("n_frames", [1, 5, 17, 95, 96, 97, 105, 450])
def test_shape_range_and_order(n_frames):
    idx = snippet_indices(n_frames, 6, 16)
    assert idx.shape == (6, 16) and np.issubdtype(idx.dtype, np.integer)
    assert idx.min() >= 0 and idx.max() <= n_frames - 1
    assert np.all(np.diff(idx.ravel()) >= 0)


@pytest.mark.parametrize("n_frames", [17, 96, 105, 450, 1000])
def test_snippet_s_lies_in_the_s_th_sixth(n_frames):
    idx = snippet_indices(n_frames, 6, 16)
    for s in range(6):
        lo, hi = s * n_frames / 6, (s + 1) * n_frames / 6
        assert np.all(idx[s] >= np.floor(lo)) and np.all(idx[s] < hi), (s, idx[s])


def test_spread_is_uniform_for_long_clips():
    n = 6 * 16 * 5  # stride exactly 5: index k is 5k + 2
    idx = snippet_indices(n, 6, 16)
    np.testing.assert_array_equal(idx.ravel(), 5 * np.arange(96) + 2)
    # Both ends are reached to within one stride.
    assert idx[0, 0] < 5 and idx[-1, -1] > n - 5


def test_exactly_s_times_l_frames_uses_each_frame_once():
    np.testing.assert_array_equal(snippet_indices(96, 6, 16).ravel(), np.arange(96))


def test_short_clip_repeats_every_frame_about_equally():
    idx = snippet_indices(10, 6, 16)
    counts = np.bincount(idx.ravel(), minlength=10)
    assert np.all(counts > 0)                    # no frame skipped
    assert counts.max() - counts.min() <= 1      # 96 / 10: each used 9 or 10 times


def test_single_frame_clip():
    np.testing.assert_array_equal(snippet_indices(1, 2, 3), np.zeros((2, 3), dtype=int))


def test_pure_function_of_its_arguments():
    np.testing.assert_array_equal(snippet_indices(123), snippet_indices(123))
    assert not np.array_equal(snippet_indices(123), snippet_indices(124))


@pytest.mark.parametrize("bad", [dict(n_frames=0), dict(n_frames=-3), dict(n_frames=2.5),
                                 dict(n_frames=10, n_snippets=0), dict(n_frames=10, snippet_len=0)])
def test_bad_arguments_raise(bad):
    with pytest.raises(ValueError, match="positive integer"):
        snippet_indices(**bad)
