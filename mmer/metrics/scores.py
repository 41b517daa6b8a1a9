"""Classification metrics (scikit-learn) and embedding metrics (pytorch-metric-learning).

Everything here is a pure function of labels and predictions or of embeddings;
the numbers come from the libraries, this module only names and packs them as
plain JSON-ready Python values.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from mmer.errors import BadInput
from mmer.metrics.knn import l2_normalise

# Scalar classification metrics, in the order the reports show them.
SCALAR_METRICS = ("accuracy", "uar", "macro_f1", "weighted_f1")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, UAR, macro/weighted F1, per-class P/R/F1/support and the confusion matrix.

    y_true, y_pred: int (N,) class indices into `label_names`. UAR (unweighted average
    recall) is scikit-learn's balanced accuracy: the mean recall over the classes present
    in `y_true`. Per-class scores and the confusion matrix (rows true, columns predicted)
    cover every class in `label_names`; a class never predicted has precision 0.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise BadInput(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-D shapes")
    if len(y_true) == 0:
        raise BadInput("no items to score")
    labels = list(range(len(label_names)))
    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected when a fold lacks a class.
        warnings.simplefilter("ignore", UserWarning)
        uar = balanced_accuracy_score(y_true, y_pred)
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "uar": float(uar),
        # scikit-learn's default label set: classes seen in y_true or y_pred.
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, prec, rec, f1, support, strict=True)
        },
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def embedding_metrics(query_emb: np.ndarray, query_y: Sequence[int],
                      ref_emb: np.ndarray | None = None,
                      ref_y: Sequence[int] | None = None) -> dict[str, float]:
    """precision@1 and MAP@R of query embeddings (Q, D) against reference embeddings (N, D).

    Computed by pytorch-metric-learning's AccuracyCalculator on L2-normalised embeddings
    (so its Euclidean FAISS search ranks by cosine). Without a reference set the queries
    are their own reference, each query leaving itself out.
    """
    query = torch.from_numpy(l2_normalise(query_emb))
    qy = torch.as_tensor(np.asarray(query_y, dtype=np.int64))
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"),
                              device=torch.device("cpu"))
    if ref_emb is None:
        out = calc.get_accuracy(query, qy, query, qy, ref_includes_query=True)
    else:
        ref = torch.from_numpy(l2_normalise(ref_emb))
        ry = torch.as_tensor(np.asarray(ref_y, dtype=np.int64))
        out = calc.get_accuracy(query, qy, ref, ry, ref_includes_query=False)
    return {"precision_at_1": float(out["precision_at_1"]),
            "map_at_r": float(out["mean_average_precision_at_r"])}
