"""Modality and fusion ablation on the same folds: each modality alone, then fused.

(``python -m mmer.ablation``, see :mod:`mmer.cli.ablation`.)

Every variant is the config with only ``model.modalities`` / ``model.fusion`` changed:
one variant per modality of ``model.modalities`` (alone, concat head) and one per
fusion option over all of them. Each is trained on every fold with
:func:`mmer.train.loop.run_fold` (resuming from ``last.pt``) and evaluated with
:func:`mmer.evaluation.evaluate.evaluate_run` into ``<runs_dir>/<NAME>/<variant>/``. A variant
whose evaluation finished with the same config (``ablation_variant.json``) is reused,
so rerunning the command resumes. Writes ``ablation.md`` and ``ablation.json`` (per
fold, mean +- std of accuracy and UAR for the softmax head, FAISS kNN and, as columns
beside them, the linear probe of ``eval.probe``) to ``<runs_dir>/<NAME>/``.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmer.config import Config, config_to_dict
from mmer.evaluation.evaluate import evaluate_run
from mmer.evaluation.report import aggregate_folds, pct, pct_spread
from mmer.io import atomic_write_json, atomic_write_text
from mmer.models.fusion import FUSIONS
from mmer.train.loop import run_fold

log = logging.getLogger("mmer.experiments.ablation")
MARKER = "ablation_variant.json"
METRICS = ("accuracy", "UAR")


def variants(cfg: Config) -> dict[str, tuple[list[str], str]]:
    """{variant name: (modalities, fusion)}: each modality alone, then each fusion of all."""
    mods = list(cfg.model.modalities)
    out = {m: ([m], "concat") for m in mods}
    if len(mods) > 1:
        out.update({f"fused_{f}": (mods, f) for f in FUSIONS})
    return out


def variant_config(cfg: Config, modalities: list[str], fusion: str) -> Config:
    """`cfg` with only the model's modalities and fusion changed."""
    model = dataclasses.replace(cfg.model, modalities=list(modalities), fusion=fusion)
    if fusion != "late" or len(modalities) != len(cfg.model.modalities):
        model = dataclasses.replace(model, late_weights=None)
    return dataclasses.replace(cfg, model=model)


def fold_scores(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold and mean +- std of accuracy and UAR of each method (softmax head, kNN k=...,
    linear probe)."""
    agg = aggregate_folds(reports)
    keys = [k for k in agg["mean"] if k.split(" / ")[-1] in METRICS and not k.startswith("embedding")]
    return {"folds": agg["folds"], "std_ddof": agg["std_ddof"],
            "per_fold": {f: {k: s[k] for k in keys} for f, s in agg["per_fold"].items()},
            "mean": {k: agg["mean"][k] for k in keys}, "std": {k: agg["std"][k] for k in keys}}


def finished_variant(cfg: Config, root: Path, name: str) -> dict[str, Any] | None:
    """The stored result of variant `name` when it finished with config `cfg`, else None."""
    marker = root / name / MARKER
    if not marker.is_file():
        return None
    done = json.loads(marker.read_text(encoding="utf-8"))
    return done if done.get("config") == config_to_dict(cfg) else None


def run_variant(cfg: Config, root: Path, name: str, *, plots: bool = False) -> dict[str, Any]:
    """Train every fold of variant `name` (config `cfg`) under ``root/name`` and evaluate it."""
    out = root / name
    done = finished_variant(cfg, root, name)
    if done is not None:
        log.info("variant %s: reusing %s", name, out / MARKER)
        return done
    start = time.perf_counter()
    for fold in range(cfg.split.n_folds):
        log.info("variant %s: fold %d", name, fold)
        result = run_fold(cfg, fold, out / f"fold_{fold}")
        log.info("variant %s: fold %d result: %s", name, fold, result)
    reports, _ = evaluate_run(out, plots=plots)
    result = {"variant": name, "modalities": list(cfg.model.modalities), "fusion": cfg.model.fusion,
              "scores": fold_scores(reports), "seconds": round(time.perf_counter() - start, 1),
              "config": config_to_dict(cfg)}
    atomic_write_json(out / MARKER, result)
    return result


def ablation_markdown(results: Sequence[dict[str, Any]], title: str) -> str:
    """Markdown table: one row per variant, mean ± std (%) of each method's accuracy and UAR."""
    keys = [k for k in results[0]["scores"]["mean"]] if results else []
    header = ["variant", "modalities", "fusion", *keys, "folds", "train+eval s"]
    lines = [f"# {title}", "", "Mean ± sample std (ddof=1) over folds, in %, on the test actors of each fold.",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        s = r["scores"]
        cells = [pct_spread(s["mean"].get(k), s["std"].get(k)) for k in keys]
        lines.append(f"| {r['variant']} | {'+'.join(r['modalities'])} | "
                     f"{r['fusion'] if len(r['modalities']) > 1 else '—'} | " + " | ".join(cells)
                     + f" | {len(s['folds'])} | {r.get('seconds', '—')} |")
    lines += ["", "Per fold (test accuracy / UAR of the softmax head):", ""]
    for r in results:
        per = r["scores"]["per_fold"]
        lines.append(f"- {r['variant']}: " + ", ".join(
            f"fold {f} {pct(v.get('softmax head / accuracy'))} / {pct(v.get('softmax head / UAR'))}"
            for f, v in per.items()))
    return "\n".join(lines) + "\n"


def write_ablation(root: Path, results: Sequence[dict[str, Any]], title: str) -> str:
    table = ablation_markdown(results, title)
    atomic_write_json(root / "ablation.json", {"variants": [{k: v for k, v in r.items() if k != "config"}
                                                            for r in results]})
    atomic_write_text(root / "ablation.md", table)
    return table
