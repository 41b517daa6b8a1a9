"""The linear probe of a trained fold: :func:`mmer.metrics.probe.linear_probe` on the fold's
own :class:`~mmer.train.data.FoldData` (``eval.probe``), written to
``fold_<k>/linear_probe.json`` (:data:`mmer.run.folder.PROBE_FILE`); evaluate.py reads it
into the fold's results as the ``"probe"`` method (the "linear probe" row)."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from mmer.errors import BadInput
from mmer.io import atomic_write_json
from mmer.metrics.probe import (
    C_GRID,
    METHOD,
    PROBE_METRICS,
    ProbeResult,
    dataset_xy,
    has_features,
    linear_probe,
)
from mmer.metrics.scores import SCALAR_METRICS
from mmer.run.folder import PROBE_FILE
from mmer.train.data import FoldData

log = logging.getLogger(__name__)


def probe_fold_data(data: FoldData, metric: str) -> tuple[str, ProbeResult]:
    """(scored part, probe result) of one fold's datasets: trained on the training part, C
    chosen on the validation part by `metric`, scored on the test part (the validation
    part, with C=1, when the fold has no test part). Test labels never choose C."""
    part = "test" if data.parts["test"] is not None else "val"
    if data.parts[part] is None:
        raise BadInput("probe: the fold has neither a test nor a validation part to score")
    val = dataset_xy(data.parts["val"]) if part == "test" else None
    result = linear_probe(dataset_xy(data.parts["train"]), val, dataset_xy(data.parts[part]), data.label_names,
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
    atomic_write_json(Path(out_dir) / PROBE_FILE, doc)
    log.info("probe: %.1f s, wrote %s", doc["seconds"], Path(out_dir) / PROBE_FILE)
    return {f"probe_{p}_{m}": metrics[m] for p, metrics in doc["results"].items() for m in SCALAR_METRICS}
