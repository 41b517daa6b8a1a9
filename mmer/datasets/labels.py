"""Labels of every task a corpus defines, and class weights from the training counts.

A corpus's adapter names its tasks in order, ``{"emotion": (...), "sentiment": (...)}``:
the emotion label is ``record.label``, any other task's label ``record.extra[task]``, each
an index into that task's names. Class weights are indexed the same way and computed
from the records with w_c = N / (K * n_c) (the most frequent class gets the smallest
weight; MELD's README prints weights in another order, so they are never copied).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput

log = logging.getLogger(__name__)


def task_labels(records: Sequence[ClipRecord], task: str,
                tasks: Mapping[str, Sequence[str]] | None = None) -> list[int]:
    """Label index per record: ``record.label`` for emotion, ``extra[task]`` for another task.

    `tasks`: the corpus's tasks; a task outside them is refused, listing them."""
    if tasks is not None and task not in tasks:
        raise BadInput(f"unknown task {task!r}; valid: {', '.join(tasks)}")
    if task == "emotion":
        return [r.label for r in records]
    missing = [r.clip_id for r in records if task not in r.extra]
    if missing:
        raise BadInput(f"task {task!r}: {len(missing)} records have no such label "
                       f"(first: {missing[0]})")
    return [int(r.extra[task]) for r in records]


def balanced_class_weights(labels: Sequence[int], n_classes: int) -> Tensor:
    """w_c = N / (K * n_c) from the training labels (a class absent from training gets N / K)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    absent = [c for c in range(n_classes) if counts[c] == 0]
    if absent:
        log.warning("classes %s have no training items; their weight is N / K", absent)
    n = max(int(counts.sum()), 1)
    return torch.tensor([n / (n_classes * max(int(c), 1)) for c in counts], dtype=torch.float32)


def class_weights(records: Sequence[ClipRecord], tasks: Mapping[str, Sequence[str]]) -> dict[str, Tensor]:
    """{task: (K_task,) float32 weights in label index order} for every task of `tasks`."""
    weights = {}
    for task, names in tasks.items():
        weights[task] = balanced_class_weights(task_labels(records, task, tasks), len(names))
        log.info("%s class weights: %s", task, describe(weights[task], names))
    return weights


def describe(weights: Tensor, names: Sequence[str]) -> str:
    """``"anger 3.70, disgust 16.0, ..."``: each weight beside its label, for logs and notes."""
    return ", ".join(f"{n} {float(w):.3g}" for n, w in zip(names, weights, strict=True))
