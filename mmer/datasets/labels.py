"""Class weights of MELD's emotion and sentiment heads, from the training counts.

Weights are indexed like the labels: position i belongs to ``MELD_EMOTIONS[i]`` (or
``MELD_SENTIMENTS[i]``), the order :mod:`mmer.data.meld` gives the CSV labels. The
weights printed in the public MELD README follow another order than these label
indices, so they are never copied; they are recomputed here from the records with
the loss's own formula, :func:`mmer.losses.balanced_class_weights`
(w_c = N / (K * n_c): the most frequent class gets the smallest weight).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from torch import Tensor

from mmer.data.meld import MELD_EMOTIONS, MELD_SENTIMENTS
from mmer.data.records import ClipRecord
from mmer.losses import balanced_class_weights

log = logging.getLogger(__name__)

MELD_TASKS = {"emotion": MELD_EMOTIONS, "sentiment": MELD_SENTIMENTS}


def task_labels(records: Sequence[ClipRecord], task: str) -> list[int]:
    """Label index per record: ``record.label`` for emotion, ``extra["sentiment"]`` for sentiment."""
    if task == "emotion":
        return [r.label for r in records]
    if task == "sentiment":
        return [int(r.extra["sentiment"]) for r in records]
    raise ValueError(f"unknown MELD task {task!r}; valid: {', '.join(MELD_TASKS)}")


def meld_class_weights(records: Sequence[ClipRecord]) -> dict[str, Tensor]:
    """{"emotion": (7,), "sentiment": (3,)} float32 weights in label index order."""
    weights = {}
    for task, names in MELD_TASKS.items():
        weights[task] = balanced_class_weights(task_labels(records, task), len(names))
        log.info("%s class weights: %s", task, describe(weights[task], names))
    return weights


def describe(weights: Tensor, names: Sequence[str]) -> str:
    """``"anger 3.70, disgust 16.0, ..."``: each weight beside its label, for logs and notes."""
    return ", ".join(f"{n} {float(w):.3g}" for n, w in zip(names, weights, strict=True))
