"""k-nearest-neighbour classification of embeddings with FAISS.

A pure function over features extracted once (as in DINO's ``eval_knn.py``): no
model inside. Embeddings are L2-normalised, so the inner product FAISS returns is
the cosine similarity, and an exact ``IndexFlatIP`` gives the true neighbours.

Each neighbour votes for its class with weight ``exp(similarity / temperature)``
(DINO's weighting): closer neighbours count more, every weight is positive even
for negative cosines, and a small temperature approaches a plain nearest-neighbour
vote. Ties go to the lower class index (``argmax``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from mmer.errors import BadInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnnResult:
    """Predictions for Q queries from their k nearest reference items.

    pred: int (Q,) predicted class; probs: float (Q, n_classes) normalised vote
    weights; neighbours: int (Q, k) row indices into the reference set, nearest
    first; similarities: float (Q, k) cosine similarities to those neighbours.
    """

    k: int
    pred: np.ndarray
    probs: np.ndarray
    neighbours: np.ndarray
    similarities: np.ndarray


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of `x` (N, D) scaled to unit length, as contiguous float32 (zero rows stay zero)."""
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if x.ndim != 2:
        raise BadInput(f"embeddings must be 2-D (N, D), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_search(ref_emb: np.ndarray, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine search: (similarities (Q, k), indices (Q, k)), nearest first.

    `ref_emb` (N, D) and `query_emb` (Q, D) are normalised here; `k` is capped at N.
    """
    ref = l2_normalise(ref_emb)
    query = l2_normalise(query_emb)
    if ref.shape[1] != query.shape[1]:
        raise BadInput(f"dimension mismatch: reference {ref.shape[1]}, query {query.shape[1]}")
    if len(ref) == 0:
        raise BadInput("kNN needs at least one reference embedding")
    if k < 1:
        raise BadInput(f"k must be at least 1, got {k}")
    if k > len(ref):
        log.warning("k=%d is more than the %d reference items; using k=%d", k, len(ref), len(ref))
        k = len(ref)
    index = faiss.IndexFlatIP(ref.shape[1])
    index.add(ref)
    sims, idx = index.search(query, k)
    return sims, idx


def _vote(sims: np.ndarray, idx: np.ndarray, ref_y: np.ndarray, n_classes: int,
          temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted class votes (Q, n_classes) normalised to sum 1, and their argmax (Q,)."""
    weights = np.exp((sims.astype(np.float64) - 1.0) / temperature)  # shift by max cosine: no overflow
    votes = np.zeros((len(sims), n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(len(sims)), sims.shape[1])
    np.add.at(votes, (rows, ref_y[idx].ravel()), weights.ravel())
    probs = votes / np.maximum(votes.sum(axis=1, keepdims=True), 1e-300)
    return probs.argmax(axis=1), probs


def _check_labels(ref_y: np.ndarray, n_ref: int, n_classes: int) -> np.ndarray:
    ref_y = np.asarray(ref_y, dtype=np.int64)
    if ref_y.shape != (n_ref,):
        raise BadInput(f"labels shape {ref_y.shape} does not match {n_ref} reference embeddings")
    if n_ref and (ref_y.min() < 0 or ref_y.max() >= n_classes):
        raise BadInput(f"labels must lie in [0, {n_classes}), got {ref_y.min()}..{ref_y.max()}")
    return ref_y


def knn_predict_many(train_emb: np.ndarray, train_y: np.ndarray, query_emb: np.ndarray,
                     ks: Sequence[int], n_classes: int, *, temperature: float = 0.07
                     ) -> dict[int, KnnResult]:
    """kNN predictions for several k from one search with the largest k.

    train_emb (N, D), train_y int (N,), query_emb (Q, D) -> {k: KnnResult}.
    """
    if not ks:
        raise BadInput("ks must name at least one k")
    if temperature <= 0:
        raise BadInput(f"temperature must be positive, got {temperature}")
    train_y = _check_labels(train_y, len(train_emb), n_classes)
    sims, idx = knn_search(train_emb, query_emb, max(ks))
    results = {}
    for k in ks:
        kk = min(k, idx.shape[1])
        pred, probs = _vote(sims[:, :kk], idx[:, :kk], train_y, n_classes, temperature)
        results[k] = KnnResult(k=kk, pred=pred, probs=probs, neighbours=idx[:, :kk],
                               similarities=sims[:, :kk])
    return results


def knn_predict(train_emb: np.ndarray, train_y: np.ndarray, query_emb: np.ndarray, k: int,
                n_classes: int, *, temperature: float = 0.07) -> KnnResult:
    """Similarity-weighted kNN vote: train_emb (N, D), train_y (N,), query_emb (Q, D)."""
    return knn_predict_many(train_emb, train_y, query_emb, [k], n_classes,
                            temperature=temperature)[k]
