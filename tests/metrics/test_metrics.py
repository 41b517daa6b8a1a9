"""Metrics agree with values worked out by hand and with scikit-learn on a fixed example."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import classification_report

from mmer.metrics.scores import classification_metrics, embedding_metrics

NAMES = ["neutral", "happy", "sad", "angry"]
# 10 items; class 3 ("angry") never occurs and is never predicted.
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 0, 1, 1, 1, 2, 2, 0, 2]


def test_classification_metrics_by_hand():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(7 / 10)
    # recalls 3/4, 2/3, 2/3 over the three classes present
    assert m["uar"] == pytest.approx((3 / 4 + 2 / 3 + 2 / 3) / 3)
    assert m["confusion"] == [[3, 1, 0, 0], [0, 2, 1, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert m["per_class"]["neutral"] == pytest.approx(
        {"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4, "support": 4})
    assert m["per_class"]["angry"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_classification_metrics_agree_with_sklearn_report():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    ref = classification_report(Y_TRUE, Y_PRED, labels=[0, 1, 2], target_names=NAMES[:3],
                                output_dict=True, zero_division=0)
    assert m["macro_f1"] == pytest.approx(ref["macro avg"]["f1-score"])
    assert m["weighted_f1"] == pytest.approx(ref["weighted avg"]["f1-score"])
    assert m["uar"] == pytest.approx(ref["macro avg"]["recall"])
    for name in NAMES[:3]:
        assert m["per_class"][name]["f1"] == pytest.approx(ref[name]["f1-score"])
        assert m["per_class"][name]["precision"] == pytest.approx(ref[name]["precision"])


def test_classification_metrics_refuse_mismatch():
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], NAMES)
    with pytest.raises(ValueError):
        classification_metrics([], [], NAMES)


def _at(degrees):
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


def test_embedding_precision_at_1_and_map_at_r_exact():
    # Same geometry as tests/metrics/test_knn.py: two queries sit nearer another class.
    ref = _at([0, 10, 90, 100, 180, 190, 270, 280]) * 4.0
    ref_y = [0, 0, 1, 1, 2, 2, 3, 3]
    query = _at([3, 52, 93, 150, 183, 232, 273, 330])
    query_y = [0, 0, 1, 2, 2, 2, 3, 0]
    m = embedding_metrics(query, query_y, ref, ref_y)
    assert m["precision_at_1"] == pytest.approx(6 / 8)
    # R = 2 (two references per class). AP@R per query, by hand from the angles:
    # 3: [0,10] -> 1; 52: [90,10] -> (0 + 1/2)/2; 93: [90,100] -> 1;
    # 150: [180,190] -> 1; 183: [180,190] -> 1; 232: [270,190] -> 1/4;
    # 273: [270,280] -> 1; 330: [0,10] -> 1.
    expected = np.mean([1, 0.25, 1, 1, 1, 0.25, 1, 1])
    assert m["map_at_r"] == pytest.approx(expected)


def test_embedding_metrics_leave_one_out_without_reference():
    emb = _at([0, 5, 90, 95, 180, 186])
    m = embedding_metrics(emb, [0, 0, 1, 1, 2, 2])
    assert m["precision_at_1"] == pytest.approx(1.0)
    assert m["map_at_r"] == pytest.approx(1.0)
    swapped = embedding_metrics(emb, [0, 1, 1, 0, 2, 2])
    assert swapped["precision_at_1"] == pytest.approx(2 / 6)
