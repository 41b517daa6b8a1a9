"""Linear-probe baseline: a standardised logistic regression over the model's own inputs.

A pure function over features built once, as :mod:`mmer.eval.knn` is: no model inside.
:func:`pool_inputs` turns each input key of a fold's datasets (the entries
:func:`mmer.train.data.fold_data` gives training: speaker normalisation, the visual table
and text embeddings included) into one vector per clip and concatenates the modalities:

- a (D,) vector is taken as is;
- an (S, D) sequence (segments, snippets, a dialogue window) gives its mean and its
  standard deviation over S, (2 D,);
- a map (S, C, H, W) (or any item with more than two axes) is first averaged over every
  axis after the second (the spatial / time axes), then pooled as an (S, C) sequence.

:func:`linear_probe` standardises on the training part, fits one
``LogisticRegression`` per C of the grid, keeps the C with the best validation score on
the adapter's selection metric (the first on ties; C=1 when there is no validation part),
and scores the scored part (test, or the validation part when the split has no test) with
that fit. Token ids (a trained text encoder's input) are not features and are left out.

Training runs the probe on each fold's :class:`~mmer.train.data.FoldData` (``eval.probe``)
and writes :func:`fold_probe_doc` to ``fold_<k>/linear_probe.json``; evaluate.py reads it
into the fold's results as the ``"probe"`` method (the "linear probe" row).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mmer.config.keys import TOKEN_KEYS
from mmer.errors import BadInput
from mmer.eval.metrics import SCALAR_METRICS, classification_metrics
from mmer.inputs.datasets import FeatureDataset
from mmer.io import atomic_write_json
from mmer.train.data import FoldData
from mmer.train.runs import summarise_folds

log = logging.getLogger(__name__)

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)
MAX_ITER = 5000
PROBE_METRICS = ("accuracy", "uar", "weighted_f1")
FOLD_FILE = "linear_probe.json"
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
    on the training part with the chosen C (validation clips never train it).
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
    else:
        log.warning("probe: no validation part; C=1")
        best = 1.0
        fits.setdefault(best, _fit(tx, ty, best))
    metrics = classification_metrics(sy, fits[best].predict(sx), label_names)
    return ProbeResult(float(best), val_scores, metrics, val_metrics.get(best))


def _xy(dataset: FeatureDataset | None) -> tuple[np.ndarray, np.ndarray] | None:
    return None if dataset is None else (pool_inputs(dataset.inputs), dataset.labels.numpy())


def probe_fold_data(data: FoldData, metric: str) -> tuple[str, ProbeResult]:
    """(scored part, probe result) of one fold's datasets: trained on the training part, C
    chosen on the validation part by `metric`, scored on the test part (the validation
    part, with C=1, when the fold has no test part). Test labels never choose C."""
    part = "test" if data.parts["test"] is not None else "val"
    if data.parts[part] is None:
        raise BadInput("probe: the fold has neither a test nor a validation part to score")
    val = _xy(data.parts["val"]) if part == "test" else None
    result = linear_probe(_xy(data.parts["train"]), val, _xy(data.parts[part]), data.label_names,
                          metric=metric)
    log.info("probe %s %s (%s, %d clips)", part, {m: round(result.metrics[m], 4) for m in PROBE_METRICS},
             result.c_rule, result.metrics["n"])
    return part, result


def fold_probe_doc(part: str, result: ProbeResult, metric: str, seconds: float) -> dict[str, Any]:
    """``linear_probe.json`` of a fold: how C was set and {part: metrics} of the scored part
    and (beside a test part) the validation part."""
    results = {part: result.metrics}
    if part == "test" and result.val_metrics is not None:
        results["val"] = result.val_metrics
    return {"method": f"{METHOD} (C in {list(C_GRID)} chosen on validation {metric}; "
                      f"C=1 without a validation part)",
            "c": result.c, "c_rule": result.c_rule, "val_scores": result.val_scores,
            "results": results, "seconds": round(seconds, 2)}


def train_fold_probe(data: FoldData, metric: str, out_dir: str | Path) -> dict[str, Any]:
    """Run the probe on a trained fold's data, write ``out_dir/linear_probe.json``, return
    its flat scores ``{"probe_<part>_<metric>": value}`` ({} when the inputs hold token ids only)."""
    if not has_features(data.parts["train"].inputs):
        log.info("probe: the inputs are token ids only; no linear probe")
        return {}
    start = time.perf_counter()
    part, result = probe_fold_data(data, metric)
    doc = fold_probe_doc(part, result, metric, time.perf_counter() - start)
    atomic_write_json(Path(out_dir) / FOLD_FILE, doc)
    log.info("probe: %.1f s, wrote %s", doc["seconds"], Path(out_dir) / FOLD_FILE)
    return {f"probe_{p}_{m}": metrics[m] for p, metrics in doc["results"].items() for m in SCALAR_METRICS}


def read_fold_probe(fold_dir: str | Path) -> dict[str, Any] | None:
    """The fold's ``linear_probe.json`` (None when training wrote none)."""
    path = Path(fold_dir) / FOLD_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BadInput(f"{path}: not a readable linear-probe file ({type(err).__name__})") from None


def summarise(per_fold: Mapping[int, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "std"}} over folds of :data:`PROBE_METRICS`, as
    :func:`mmer.train.runs.summarise_folds` gives them (sample std, None for one fold)."""
    summary = summarise_folds(per_fold, PROBE_METRICS)
    return {name: summary[name] for name in PROBE_METRICS}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100.0 * x:.1f}"


def _mean_std(s: Mapping[str, Any]) -> str:
    if s["mean"] is None:
        return "—"
    return _pct(s["mean"]) + ("" if s["std"] is None else f" ± {_pct(s['std'])}")


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The probe beside the model (:func:`probe_doc`'s dict) as one markdown table, in %."""
    head = [f"{who} {m}" for who in ("probe", "model") for m in PROBE_METRICS]
    lines = [f"# Linear probe of `{doc['config']}` ({doc['part']} part)", "",
             "| fold | n | C | " + " | ".join(head) + " |", "|" + "---|" * (3 + len(head))]
    for fold, row in doc["folds"].items():
        model = row.get("model") or {}
        cells = [_pct(row["probe"][m]) for m in PROBE_METRICS] + [_pct(model.get(m)) for m in PROBE_METRICS]
        lines.append(f"| {fold} | {row['n']} | {row['c']:g} | " + " | ".join(cells) + " |")
    cells = [_mean_std(doc["mean_std"]["probe"][m]) for m in PROBE_METRICS]
    cells += [_mean_std(doc["mean_std"]["model"][m]) for m in PROBE_METRICS]
    lines.append("| mean ± std | | | " + " | ".join(cells) + " |")
    lines += ["", f"Probe: {doc['method']}. Model: {doc['model_source'] or 'no run found'}."]
    return "\n".join(lines) + "\n"


def probe_doc(config_name: str, part: str, results: Mapping[int, ProbeResult],
              model: Mapping[int, Mapping[str, float]], model_source: str | None,
              metric: str) -> dict[str, Any]:
    """probe.json: per fold the probe's and the model's figures, and their mean ± std."""
    folds = {str(f): {"n": r.metrics["n"], "c": r.c, "val_scores": r.val_scores,
                      "probe": {m: r.metrics[m] for m in PROBE_METRICS},
                      "model": dict(model[f]) if f in model else None}
             for f, r in sorted(results.items())}
    return {"config": config_name, "part": part, "model_source": model_source,
            "method": f"{METHOD} (C in {list(C_GRID)} chosen on validation {metric})",
            "folds": folds,
            "mean_std": {"probe": summarise({f: r.metrics for f, r in results.items()}),
                         "model": summarise(model)}}
