"""kNN on embeddings placed at known angles, so every expected answer is exact."""
from __future__ import annotations

import numpy as np
import pytest

from mmer.metrics.knn import knn_predict, knn_predict_many, knn_search, l2_normalise


def _at(degrees: list[float], scale: float = 1.0) -> np.ndarray:
    """2-D points on a circle at the given angles (radius `scale`)."""
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return (scale * np.stack([np.cos(rad), np.sin(rad)], axis=1)).astype(np.float32)


# Reference: class c has two points, at 90c and 90c + 10 degrees.
REF_ANGLES = [0, 10, 90, 100, 180, 190, 270, 280]
REF_Y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
# Queries with their true classes. Two sit in a class-0/class-2 sector but nearer the next
# class: 52 deg is 38 from 90 (class 1) and 42 from 10; 232 deg is 38 from 270 (class 3)
# and 42 from 190. No query is equally far from two reference points.
QUERY_ANGLES = [3, 52, 93, 150, 183, 232, 273, 330]
QUERY_Y = np.array([0, 0, 1, 2, 2, 2, 3, 0])


def test_precision_at_1_is_exactly_six_of_eight():
    ref = _at(REF_ANGLES, scale=3.0)  # scale must not matter: cosine after normalising
    query = _at(QUERY_ANGLES, scale=0.5)
    res = knn_predict(ref, REF_Y, query, k=1, n_classes=4)
    assert res.pred.tolist() == [0, 1, 1, 2, 2, 3, 3, 0]
    assert (res.pred == QUERY_Y).mean() == 6 / 8
    assert res.neighbours[:, 0].tolist() == [0, 2, 2, 4, 4, 6, 6, 0]
    expected_sims = np.cos(np.deg2rad([3, 38, 3, 30, 3, 38, 3, 30]))
    np.testing.assert_allclose(res.similarities[:, 0], expected_sims, atol=1e-6)


def test_weighted_vote_prefers_closer_neighbours():
    # Query at 0 deg; one class-0 neighbour at 5 deg, two class-1 neighbours at 60 and 300.
    ref = _at([5, 60, 300])
    ref_y = np.array([0, 1, 1])
    query = _at([0])
    sharp = knn_predict(ref, ref_y, query, k=3, n_classes=2, temperature=0.07)
    assert sharp.pred.tolist() == [0]  # a plain majority vote would say class 1
    flat = knn_predict(ref, ref_y, query, k=3, n_classes=2, temperature=100.0)
    assert flat.pred.tolist() == [1]  # near-uniform weights: the majority wins
    w = np.exp((np.cos(np.deg2rad([5, 60, 60])) - 1) / 0.07)
    np.testing.assert_allclose(sharp.probs[0], [w[0] / w.sum(), (w[1] + w[2]) / w.sum()], rtol=1e-6)


def test_many_k_share_one_search_and_cap_k():
    ref = _at(REF_ANGLES)
    query = _at(QUERY_ANGLES)
    many = knn_predict_many(ref, REF_Y, query, [1, 3, 50], n_classes=4)
    assert set(many) == {1, 3, 50}
    assert many[3].neighbours.shape == (8, 3)
    assert many[50].k == 8 and many[50].neighbours.shape == (8, 8)
    np.testing.assert_array_equal(many[1].pred, knn_predict(ref, REF_Y, query, 1, 4).pred)
    np.testing.assert_allclose(many[3].probs.sum(axis=1), 1.0)


def test_search_matches_brute_force_cosine():
    rng = np.random.default_rng(0)
    ref, query = rng.normal(size=(20, 5)), rng.normal(size=(4, 5))
    sims, idx = knn_search(ref, query, 4)
    brute = l2_normalise(query) @ l2_normalise(ref).T
    np.testing.assert_array_equal(idx, np.argsort(-brute, axis=1)[:, :4])
    np.testing.assert_allclose(sims, np.sort(brute, axis=1)[:, ::-1][:, :4], atol=1e-5)


@pytest.mark.parametrize("bad", [
    dict(train_y=np.array([0, 1])),          # wrong length
    dict(train_y=np.array([0, 0, 5])),       # label out of range
    dict(k=0),
])
def test_bad_input_is_refused(bad):
    args = dict(train_emb=_at([0, 90, 180]), train_y=np.array([0, 1, 1]),
                query_emb=_at([10]), k=1, n_classes=2)
    args.update(bad)
    with pytest.raises(ValueError):
        knn_predict(**args)
