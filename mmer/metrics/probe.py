"""Linear-probe baseline: a standardised logistic regression over a model's own inputs.

A pure function over features built once, as :mod:`mmer.metrics.knn` is: no model inside.
:func:`pool_inputs` turns each input key of a part's datasets into one vector per clip and
concatenates the modalities:

- a (D,) vector is taken as is;
- an (S, D) sequence (segments, snippets, a dialogue window) gives its mean and its
  standard deviation over S, (2 D,);
- a map (S, C, H, W) (or any item with more than two axes) is first averaged over every
  axis after the second (the spatial / time axes), then pooled as an (S, C) sequence.

:func:`linear_probe` standardises on the training part, fits one
``LogisticRegression`` per C of the grid, keeps the C with the best validation score on
the adapter's selection metric (the first on ties; C=1 when there is no validation part),
and scores the scored part with that fit. Token ids (a trained text encoder's input) are
not features and are left out. Training runs it on each fold (:mod:`mmer.train.probe`).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmer.config.keys import TOKEN_KEYS
from mmer.errors import BadInput
from mmer.metrics.scores import classification_metrics

log = logging.getLogger(__name__)

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)
MAX_ITER = 5000
PROBE_METRICS = ("accuracy", "uar", "weighted_f1")
METHOD = "mean + std pooling, standardised on train, LogisticRegression"


def pool_key(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """One input key of N items, (N, D) | (N, S, D) | (N, S, C, *spatial), as (N, F) float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise BadInput(f"probe: an input of shape {x.shape} has no feature axis")
    if x.ndim == 2:
        return x
    if x.ndim > 3:
        x = x.mean(axis=tuple(range(3, x.ndim)))
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)


def has_features(inputs: Mapping[str, Any]) -> bool:
    """Whether `inputs` hold a key the probe reads (anything but token ids)."""
    return any(k not in TOKEN_KEYS for k in inputs)


def pool_inputs(inputs: Mapping[str, torch.Tensor | np.ndarray]) -> np.ndarray:
    """{key: stacked input (N, ...)} -> (N, F): each key pooled (:func:`pool_key`), in
    sorted key order, concatenated. Token-id keys are skipped."""
    keys = sorted(k for k in inputs if k not in TOKEN_KEYS)
    if not keys:
        raise BadInput(f"probe: no feature inputs among {sorted(inputs)} (token ids are not features)")
    return np.concatenate([pool_key(inputs[k]) for k in keys], axis=1)


def dataset_xy(dataset: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(pooled inputs (N, F), labels (N,)) of a dataset with ``inputs`` and ``labels``
    (:class:`mmer.inputs.datasets.FeatureDataset`); None for no dataset."""
    return None if dataset is None else (pool_inputs(dataset.inputs), dataset.labels.numpy())


@dataclass(frozen=True)
class ProbeResult:
    """The probe of one fold: the chosen C, the validation score of every C (empty without a
    validation part), the scored part's metrics (:func:`classification_metrics`) and the
    validation part's at the chosen C (None without a validation part)."""

    c: float
    val_scores: dict[str, float]
    metrics: dict[str, Any]
    val_metrics: dict[str, Any] | None = None

    @property
    def c_rule(self) -> str:
        """How C was set, for a report line."""
        return f"C={self.c:g} chosen on validation" if self.val_scores else "C=1 fixed (no validation part)"


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=MAX_ITER).fit(x, y)


def linear_probe(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray] | None,
                 scored: tuple[np.ndarray, np.ndarray], label_names: Sequence[str], *,
                 metric: str = "uar", grid: Sequence[float] = C_GRID) -> ProbeResult:
    """Fit on `train` (x (N, F), y (N,)), choose C on `val` by `metric`, score `scored`.

    The scaler is fitted on the training part only; the reported fit is the one trained
    on the training part with the chosen C (validation clips never train it). Without
    `val`, a `grid` of one value is that C (one chosen before); a longer grid falls back to C=1.
    """
    (tx, ty), (sx, sy) = train, scored
    if len(np.unique(ty)) < 2:
        raise BadInput(f"probe: the training part has {len(np.unique(ty))} class(es); need 2 or more")
    scaler = StandardScaler().fit(tx)
    tx, sx = scaler.transform(tx), scaler.transform(sx)
    fits, val_metrics = {}, {}
    for c in grid:
        fits[c] = _fit(tx, ty, c)
        if val is not None:
            val_metrics[c] = classification_metrics(val[1], fits[c].predict(scaler.transform(val[0])),
                                                    label_names)
    val_scores = {f"{c:g}": m[metric] for c, m in val_metrics.items()}
    if val_scores:
        best = max(grid, key=lambda c: val_scores[f"{c:g}"])  # max keeps the first of ties
    elif len(grid) == 1:  # C given (chosen earlier, e.g. by the trained fold's validation part)
        best = float(grid[0])
    else:
        log.warning("probe: no validation part; C=1")
        best = 1.0
        fits.setdefault(best, _fit(tx, ty, best))
    metrics = classification_metrics(sy, fits[best].predict(sx), label_names)
    return ProbeResult(float(best), val_scores, metrics, val_metrics.get(best))
