"""Evaluation of embedded clip sets: FAISS kNN, softmax head, metrics, plots, reports.

The scoring here is a pure function of the model's outputs (:class:`EmbeddedSet`):
the training clips are the kNN reference, every other part (validation, test, or the
clips of another data root) is scored against them. :func:`evaluate_checkpoint` and
:func:`evaluate_run` rebuild the model from a checkpoint, embed the fold's clips from
the feature cache (:mod:`mmer.evaluation.sets`) and write the reports and plots.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmer.config import EvalConfig, config_to_dict
from mmer.config.keys import needs_media
from mmer.datasets import get_adapter
from mmer.errors import BadInput
from mmer.evaluation.report import main_part, write_fold_report, write_summary
from mmer.evaluation.sets import (
    EmbeddedSet,
    backbone_status,
    checkpoint_records,
    embed_entries,
    fold_entries,
    model_keys,
)
from mmer.inputs.datasets import FeatureDataset
from mmer.io import SkipList, WriteError
from mmer.metrics.knn import knn_predict_many
from mmer.metrics.probe import dataset_xy, linear_probe
from mmer.metrics.scores import classification_metrics, embedding_metrics
from mmer.run.folder import (
    fold_checkpoints,
    load_checkpoint,
    model_from_checkpoint,
    read_fold_probe,
    write_reference,
)
from mmer.viz.confusion import plot_confusion
from mmer.viz.tsne import Colouring, plot_tsne, tsne_2d

log = logging.getLogger(__name__)


def score_part(reference: EmbeddedSet, query: EmbeddedSet, label_names: Sequence[str],
               eval_cfg: EvalConfig, extra_names: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Softmax-head, kNN (every k in ``eval_cfg.k``) and embedding metrics of `query`, and
    under ``"extra"`` the metrics of each extra head of `extra_names` (MELD's sentiment).

    The kNN vote and the retrieval metrics use `reference` (the training clips).
    """
    n_classes = len(label_names)
    knn = knn_predict_many(reference.embedding, reference.labels, query.embedding,
                           eval_cfg.k, n_classes, temperature=eval_cfg.knn_temperature)
    out = {
        "softmax": classification_metrics(query.labels, query.logits.argmax(axis=1), label_names),
        "knn": {str(k): classification_metrics(query.labels, res.pred, label_names)
                for k, res in knn.items()},
        "embedding": embedding_metrics(query.embedding, query.labels,
                                       reference.embedding, reference.labels),
    }
    tasks = [t for t in (extra_names or {}) if t in query.extra_logits]
    if tasks:
        out["extra"] = {t: classification_metrics(query.extra_labels[t], query.extra_logits[t].argmax(axis=1),
                                                  extra_names[t]) for t in tasks}
    return out


def score_sets(sets: dict[str, EmbeddedSet], label_names: Sequence[str],
               eval_cfg: EvalConfig, extra_names: dict[str, list[str]] | None = None
               ) -> dict[str, dict[str, Any]]:
    """Score every part but ``"train"`` against ``sets["train"]``: {part: score_part(...)}."""
    if "train" not in sets or len(sets["train"]) == 0:
        raise BadInput("scoring needs the training clips as the kNN reference")
    results = {}
    for part, query in sets.items():
        if part == "train":
            continue
        if len(query) == 0:
            log.warning("no %s clips to score; skipped", part)
            continue
        results[part] = score_part(sets["train"], query, label_names, eval_cfg, extra_names)
    return results


def speaker_colourings(speakers: Sequence[str], dataset: str, max_speakers: int = 12) -> list[Colouring]:
    """Ways to colour a t-SNE beyond emotion: by actor and by the corpus's speaker groups
    (RAVDESS: gender, from the actor number).

    Beyond `max_speakers` speakers (MELD has hundreds) the most frequent keep their
    colour and the rest are "other".
    """
    if not speakers:
        return []
    numeric = all(str(s).isdigit() for s in speakers)
    kept = {s for s, _ in Counter(speakers).most_common(max_speakers)}
    order = sorted(kept, key=lambda s: int(s) if numeric else s)
    names = [f"actor {s}" if s in kept else "other" for s in speakers]
    other = ["other"] if len(kept) < len(set(speakers)) else []
    out = [Colouring("actor", names, [f"actor {s}" for s in order] + other)]
    out += [Colouring(group, values) for group, values in get_adapter(dataset).speaker_groups(speakers).items()]
    return out


def make_plots(out_dir: str | Path, sets: dict[str, EmbeddedSet], results: dict[str, Any],
               label_names: Sequence[str], *, dataset: str, perplexity: float, seed: int = 0,
               part: str = "test") -> dict[str, str]:
    """t-SNE of `part`'s embeddings and its confusion matrices; {caption: file name in out_dir}."""
    out_dir = Path(out_dir)
    query, scores = sets[part], results[part]
    plots: dict[str, str] = {}
    if len(query) >= 3:
        points = tsne_2d(query.embedding, perplexity=perplexity, seed=seed)
        colourings = [Colouring("emotion", [label_names[i] for i in query.labels], label_names)]
        colourings += speaker_colourings(query.speakers, dataset)
        name = f"tsne_{part}.png"
        plot_tsne(points, colourings, out_dir / name, title=f"t-SNE of {part} embeddings")
        plots[f"t-SNE of {part} embeddings"] = name
    else:
        log.warning("only %d %s clips: no t-SNE plot", len(query), part)
    methods = [("softmax", "softmax head", scores["softmax"])]
    methods += [(f"knn_k{k}", f"kNN k={k}", m) for k, m in scores["knn"].items()]
    for slug, caption, metrics in methods:
        name = f"confusion_{part}_{slug}.png"
        plot_confusion(np.asarray(metrics["confusion"]), label_names, out_dir / name,
                       title=f"{part} confusion, {caption}")
        plots[f"{part} confusion, {caption}"] = name
    return plots


HEADLINE_METRICS = ("weighted_f1", "accuracy", "macro_f1")


def headline(results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """MELD's benchmark numbers: {part: {"emotion" | task | "linear probe": {weighted_f1,
    accuracy, macro_f1}}} of the softmax heads (the emotion head and each extra head) and of
    the fold's linear probe when training wrote one."""
    out = {}
    for part, scores in results.items():
        heads = {"emotion": scores["softmax"], **scores.get("extra", {}),
                 **({"linear probe": scores["probe"]} if "probe" in scores else {})}
        out[part] = {h: {k: m[k] for k in HEADLINE_METRICS} for h, m in heads.items()}
    return out


# ---------------------------------------------------------------- checkpoints and runs


def _slug(data_root: str | None, overrides: Sequence[str]) -> str:
    """Folder name for scores on other data: ``eval_<last two parts of the root>``."""
    parts = Path(data_root).resolve().parts[-2:] if data_root else ("overrides",)
    text = "_".join(parts) if data_root or not overrides else "_".join(overrides)
    return "eval_" + "".join(c if c.isalnum() or c in "-." else "_" for c in text)[:80]


def evaluate_checkpoint(path: str | Path, *, data_root: str | None = None,
                        data_overrides: Sequence[str] = (), out_dir: str | Path | None = None,
                        plots: bool = True, device: str = "cpu", batch_size: int = 64) -> dict[str, Any]:
    """Evaluate one fold's checkpoint; write report.json, report.md and PNGs; return the report.

    The model and the clips of each part come from the checkpoint alone. `data_root` /
    `data_overrides` score the clips of other data instead (see :mod:`mmer.evaluation.sets`);
    the files then go to ``<fold>/eval_<root>/`` unless `out_dir` says otherwise. The
    fold's ``linear_probe.json`` (written by training) joins each part it scored as the
    ``"probe"`` method; on other data the probe is fitted again on the fold's training
    clips with the C recorded there and scores the other clips.
    """
    path = Path(path)
    model, ckpt = model_from_checkpoint(load_checkpoint(path))
    other = bool(data_root or data_overrides)
    skipped = SkipList()
    entries, data_cfg = fold_entries(ckpt, data_root=data_root, data_overrides=data_overrides,
                                     skipped=skipped)
    keys = model_keys(data_cfg)
    dev = torch.device(device)
    tasks = list(ckpt.get("extra_classes") or {})
    sets = {p: embed_entries(model, e, keys, device=dev, batch_size=batch_size, tasks=tasks)
            for p, e in entries.items()}
    names = list(ckpt["label_names"])
    if not other:  # what predict needs to work without the training data
        _write_reference(path, ckpt, sets["train"], entries["train"], keys)
    adapter = get_adapter(data_cfg)
    results = score_sets(sets, names, data_cfg.eval, adapter.extra_tasks)
    probe = read_fold_probe(path.parent)
    if other and probe is not None and "test" in results:
        probe = _probe_on_other_data(probe, entries, keys, names)
    for part, metrics in (probe or {}).get("results", {}).items():
        if part in results:  # the probe training wrote on this fold's split, or the other data's
            results[part]["probe"] = metrics
    out = Path(out_dir) if out_dir else path.parent / (_slug(data_root, data_overrides) if other else "")
    split = ckpt["split"]
    report: dict[str, Any] = {
        "run": path.parent.parent.name, "fold": int(split.get("fold", 0)), "checkpoint": str(path),
        "epoch": ckpt.get("epoch"), "best": ckpt.get("best"), "git": ckpt.get("git"),
        "world_size": int(ckpt["config"].get("train", {}).get("world_size") or 1),  # torchrun processes
        "data_root": adapter.root(data_cfg),
        "data_overrides": list(data_overrides), "label_names": names,
        "split": split.get("actors", {"rule": split.get("rule")}),
        "refit": split.get("refit"),
        "n_clips": {p: len(s) for p, s in sets.items()},
        "clips": {p: s.clip_ids for p, s in sets.items()},
        "backbones": backbone_status(entries["train"], keys),
        "knn": {"reference": "train", "index": "faiss.IndexFlatIP on L2-normalised embeddings",
                "weights": f"exp(cosine / {data_cfg.eval.knn_temperature})"},
        "config": config_to_dict(data_cfg), "results": results, "plots": {}, "out_dir": str(out),
    }
    if probe is not None:
        report["linear_probe"] = {k: probe.get(k) for k in ("method", "c", "c_rule", "seconds")}
    if other:
        report["split"] = {"train": split.get("actors", {}).get("train"),
                           "test": sorted({str(s) for s in sets["test"].speakers}, key=_actor_order)}
        report["skipped"] = [{"item": s.item, "reason": s.reason} for s in skipped]
    if adapter.selection_metric == "weighted_f1":  # the corpus's benchmark numbers
        report["headline"] = headline(results)
    if adapter.max_seconds(data_cfg) is not None and needs_media(data_cfg):
        report["truncated"] = {"max_seconds": adapter.max_seconds(data_cfg), "clips": {
            p: sum(bool((e.get("meta") or {}).get("truncated")) for e in es) for p, es in entries.items()}}
    shown = main_part(results)
    if plots and shown in results:
        report["plots"] = make_plots(out, sets, results, names, dataset=data_cfg.dataset,
                                     perplexity=data_cfg.eval.tsne_perplexity, seed=data_cfg.train.seed,
                                     part=shown)
    write_fold_report(out, report)
    log.info("wrote %s", out / "report.md")
    return report


def _probe_on_other_data(probe: dict[str, Any], entries: dict[str, list[dict[str, Any]]],
                         keys: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """The fold's linear probe with the C its validation part chose, fitted again on the
    fold's training clips and scoring the other data's clips (``entries["test"]``)."""
    start = time.perf_counter()
    train, test = (dataset_xy(FeatureDataset(entries[part], keys)) for part in ("train", "test"))
    c = float(probe["c"])
    result = linear_probe(train, None, test, names, grid=(c,))
    return {"method": probe.get("method"), "c": c,
            "c_rule": f"C={c:g} as chosen on the fold's validation part, fitted on its training part",
            "seconds": round(time.perf_counter() - start, 2), "results": {"test": result.metrics}}


def _write_reference(path: Path, ckpt: dict[str, Any], train: EmbeddedSet,
                     entries: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    records = checkpoint_records(ckpt)[1]["train"]
    by_id = {r.clip_id: r for r in records}
    probe = None
    if entries and entries[0]["clip_id"] in by_id:
        first = entries[0]
        probe = {"clip_id": first["clip_id"], "path": str(by_id[first["clip_id"]].path),
                 "features": {k: first[k] for k in keys if k in first}}
    try:
        write_reference(path.parent, path.name, ckpt.get("epoch"),
                        {"embedding": train.embedding, "labels": train.labels},
                        train.clip_ids, train.speakers, probe)
    except (OSError, WriteError) as err:  # a read-only copy of a run can still be evaluated
        log.warning("%s: cannot write reference.pt (%s)", path.parent,
                    err.strerror if isinstance(err, OSError) else err)


def _actor_order(speaker: str) -> tuple[int, str]:
    return (int(speaker), "") if speaker.isdigit() else (1 << 30, speaker)


def evaluate_run(run_dir: str | Path, *, which: str = "best", data_root: str | None = None,
                 data_overrides: Sequence[str] = (), **kwargs: Any) -> tuple[list[dict[str, Any]], Path]:
    """Evaluate every fold of a run and write the fold summary; returns (reports, summary dir).

    The summary (per-fold table, mean ± std) goes to ``<run>/report.md`` and ``report.json``,
    or ``<run>/eval_<root>/`` for other data.
    """
    run_dir = Path(run_dir)
    reports = [evaluate_checkpoint(p, data_root=data_root, data_overrides=data_overrides, **kwargs)
               for p in fold_checkpoints(run_dir, which)]
    other = bool(data_root or data_overrides)
    out = run_dir / _slug(data_root, data_overrides) if other else run_dir
    title = f"Evaluation of run `{run_dir.name}` ({which}.pt)" + (f" on {reports[0]['data_root']}"
                                                                    if other else "")
    write_summary(out, reports, title=title, extra={"run": run_dir.name, "checkpoint": which,
                                                    "data_root": reports[0]["data_root"]})
    return reports, out
