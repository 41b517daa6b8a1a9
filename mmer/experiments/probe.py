"""The linear probe beside a model, as one table: :func:`probe_doc` (probe.json) and
:func:`render_markdown` (probe.md) of ``python -m mmer.probe``; the probe itself is
:mod:`mmer.metrics.probe`, run on each fold by :mod:`mmer.train.probe`."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mmer.evaluation.report import pct, pct_spread
from mmer.metrics.probe import C_GRID, METHOD, PROBE_METRICS, ProbeResult
from mmer.run.folder import summarise_folds

log = logging.getLogger(__name__)



def summarise(per_fold: Mapping[int, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "std"}} over folds of :data:`PROBE_METRICS`, as
    :func:`mmer.run.folder.summarise_folds` gives them (sample std, None for one fold)."""
    summary = summarise_folds(per_fold, PROBE_METRICS)
    return {name: summary[name] for name in PROBE_METRICS}


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The probe beside the model (:func:`probe_doc`'s dict) as one markdown table, in %."""
    head = [f"{who} {m}" for who in ("probe", "model") for m in PROBE_METRICS]
    lines = [f"# Linear probe of `{doc['config']}` ({doc['part']} part)", "",
             "| fold | n | C | " + " | ".join(head) + " |", "|" + "---|" * (3 + len(head))]
    for fold, row in doc["folds"].items():
        model = row.get("model") or {}
        cells = [pct(row["probe"][m]) for m in PROBE_METRICS] + [pct(model.get(m)) for m in PROBE_METRICS]
        lines.append(f"| {fold} | {row['n']} | {row['c']:g} | " + " | ".join(cells) + " |")
    stats = doc["mean_std"]
    cells = [pct_spread(stats[who][m]["mean"], stats[who][m]["std"]) for who in ("probe", "model") for m in PROBE_METRICS]
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
