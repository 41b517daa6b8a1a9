"""Evaluation reports: ``report.json`` (every number) and ``report.md`` (readable tables).

A fold report is a plain dict built by :mod:`mmer.evaluation.evaluate`::

    {"run": str, "fold": int, "checkpoint": str, "data_root": str, "label_names": [...],
     "split": {"train": [actors], "val": [...], "test": [...]}, "n_clips": {...},
     "backbones": {"random": bool, "pretrained": {...}}, "config": {...},
     "world_size": torchrun processes that trained it (1 without torchrun),
     "results": {"test": {"softmax": metrics, "knn": {"5": metrics, ...},
                          "probe": metrics (the linear probe, when training wrote one),
                          "embedding": {"precision_at_1", "map_at_r"}}, "val": {...}},
     "linear_probe": {"method", "c", "c_rule", "seconds"} (when training wrote one),
     "plots": {"tsne": "tsne_test.png", ...}}

where ``metrics`` is :func:`mmer.metrics.scores.classification_metrics`. Several folds are
summarised by :func:`aggregate_folds`: per-fold scalars, their mean and their sample
standard deviation (ddof=1, the spread one would expect over new folds; ``None`` for a
single fold).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmer.errors import BadInput
from mmer.io import atomic_write_json, atomic_write_text
from mmer.metrics.scores import SCALAR_METRICS

STD_DDOF = 1
PROBE_ROW = "linear probe"
_NICE = {"accuracy": "accuracy", "uar": "UAR", "macro_f1": "macro-F1", "weighted_f1": "weighted F1",
         "precision_at_1": "precision@1", "map_at_r": "MAP@R"}


def method_rows(part: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(method name, metrics) for the softmax head, each kNN k, the linear probe (when
    training wrote one), then each extra head (``"sentiment head"``), from one results part."""
    rows = [("softmax head", part["softmax"])] if "softmax" in part else []
    for k, metrics in sorted(part.get("knn", {}).items(), key=lambda kv: int(kv[0])):
        rows.append((f"kNN k={k}", metrics))
    if "probe" in part:
        rows.append((PROBE_ROW, part["probe"]))
    rows += [(f"{task} head", metrics) for task, metrics in part.get("extra", {}).items()]
    return rows


def main_part(parts: Mapping[str, Any]) -> str:
    """The part a report leads with: ``"test"``, or ``"val"`` where the split has no test
    part (MELD without its test CSV, one model on every actor with ``split.n_folds=1``)."""
    return "test" if "test" in parts else "val"


def fold_scalars(report: dict[str, Any], part: str = "test") -> dict[str, float]:
    """Flat ``{"softmax head / accuracy": value, ...}`` of one part's headline numbers."""
    results = report["results"][part]
    out = {}
    for method, metrics in method_rows(results):
        for name in SCALAR_METRICS:
            out[f"{method} / {_NICE[name]}"] = float(metrics[name])
    for name, value in results.get("embedding", {}).items():
        out[f"embedding / {_NICE.get(name, name)}"] = float(value)
    return out


def aggregate_folds(reports: Sequence[dict[str, Any]], part: str = "test") -> dict[str, Any]:
    """Per-fold scalars and mean / std over folds of every scalar that all folds have."""
    if not reports:
        raise BadInput("no fold reports to aggregate")
    per_fold = {int(r["fold"]): fold_scalars(r, part) for r in reports}
    keys = [k for k in per_fold[int(reports[0]["fold"])] if all(k in s for s in per_fold.values())]
    table = np.array([[s[k] for k in keys] for s in per_fold.values()], dtype=np.float64)
    mean = table.mean(axis=0)
    std = table.std(axis=0, ddof=STD_DDOF) if len(table) > STD_DDOF else [None] * len(keys)
    return {
        "part": part,
        "folds": sorted(per_fold),
        "std_ddof": STD_DDOF,
        "per_fold": {str(f): per_fold[f] for f in sorted(per_fold)},
        "mean": {k: float(m) for k, m in zip(keys, mean, strict=True)},
        "std": {k: (None if s is None else float(s)) for k, s in zip(keys, std, strict=True)},
    }


# ---------------------------------------------------------------- markdown


def pct(x: float | None) -> str:
    """A fraction as a percentage to one place; "—" for a missing score."""
    return "—" if x is None else f"{100.0 * x:.1f}"


def pct_spread(mean: float | None, std: float | None) -> str:
    """'72.0 ± 4.8' in %; the mean alone when there is no spread; "—" without a mean."""
    if mean is None:
        return "—"
    return pct(mean) + ("" if std is None else f" ± {pct(std)}")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def actors_text(actors: Any) -> str:
    """A split part's actors for a report line: a list joined, a description as it is."""
    return actors if isinstance(actors, str) else ", ".join(map(str, actors))


def _backbone_line(backbones: dict[str, Any]) -> str:
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(backbones.get("pretrained", {}).items()))
    if backbones.get("random"):
        return f"**Backbones: randomly initialised (not pretrained)** — {detail or 'no weights'}"
    if any(" loaded" in str(v) for v in backbones.get("pretrained", {}).values()):
        return f"Backbones: pretrained — {detail}"
    # Only encoders trained from scratch or precomputed tables: nothing pretrained to claim.
    return f"Backbones: none pretrained — {detail or 'no backbone'}"


def _part_lines(title: str, part: dict[str, Any], label_names: Sequence[str], *,
                detail: bool) -> list[str]:
    rows = method_rows(part)
    n = rows[0][1]["n"] if rows else 0
    lines = [f"## {title} ({n} clips)", "", "Scores in %.", ""]
    lines += _table(["method"] + [_NICE[m] for m in SCALAR_METRICS],
                    [[name] + [pct(m[s]) for s in SCALAR_METRICS] for name, m in rows])
    if "embedding" in part:
        emb = part["embedding"]
        lines += ["", "Embedding retrieval against the training clips: "
                  + ", ".join(f"{_NICE.get(k, k)} {pct(v)}" for k, v in emb.items())]
    # Per class for the softmax head and the smallest k only; the rest is in report.json.
    for name, metrics in rows[:2] if detail else []:
        lines += ["", f"### Per class, {name}", ""]
        lines += _table(["class", "precision", "recall", "F1", "support"],
                        [[c, pct(pc["precision"]), pct(pc["recall"]), pct(pc["f1"]), pc["support"]]
                         for c, pc in metrics["per_class"].items()])
        lines += ["", "Confusion (rows true, columns predicted):", ""]
        lines += _table([""] + list(label_names),
                        [[c] + [str(v) for v in row] for c, row in zip(label_names, metrics["confusion"],
                                                                          strict=True)])
    return lines + [""]


def _headline_lines(report: dict[str, Any]) -> list[str]:
    """MELD: weighted F1 of both heads per part, accuracy and macro-F1 beside it."""
    rows = []
    for part, heads in report.get("headline", {}).items():
        name = "dev" if part == "val" else part
        rows += [[name, head, pct(m["weighted_f1"]), pct(m["accuracy"]), pct(m["macro_f1"])]
                 for head, m in heads.items()]
    if not rows:
        return []
    lines = ["## Headline: weighted F1", "", "Scores in %, softmax heads.", ""]
    return lines + _table(["part", "head", "weighted F1", "accuracy", "macro-F1"], rows) + [""]


def context_line(config: dict[str, Any]) -> str | None:
    """Which dialogue context the run's numbers used (None without context)."""
    text = config.get("text", {})
    n = int(text.get("context", 0) or 0)
    if n == 0:
        return None
    if text.get("context_mode", "past") == "dialogue":
        return (f"text context: offline, {n} past and {n} following utterances of the dialogue "
                f"(text.context_mode: dialogue, text.dialogue: {text.get('dialogue')})")
    return (f"text context: online, {n} past utterances only (text.context_mode: past, "
            f"text.dialogue: {text.get('dialogue')})")


def render_fold_markdown(report: dict[str, Any]) -> str:
    """The readable report of one fold."""
    split = report.get("split", {})
    lines = [f"# Evaluation of run `{report.get('run')}`, fold {report.get('fold')}", "",
             f"- checkpoint: `{report.get('checkpoint')}`",
             f"- data root: `{report.get('data_root')}`",
             "- " + _backbone_line(report.get("backbones", {}))]
    if "truncated" in report:
        trunc = report["truncated"]
        lines.append(f"- clips truncated at {trunc['max_seconds']:g} s: "
                     + ", ".join(f"{p} {n}" for p, n in trunc["clips"].items()))
    for part in ("train", "val", "test"):
        if split.get(part):
            count = report.get("n_clips", {}).get(part, "?")
            lines.append(f"- {part} actors: {actors_text(split[part])} ({count} clips)")
    if report.get("skipped"):
        lines.append(f"- skipped files of the evaluation data: {len(report['skipped'])} (first: "
                     f"{report['skipped'][0]['item']}: {report['skipped'][0]['reason']}; all in report.json)")
    context = context_line(report.get("config", {}))
    if context:
        lines.append(f"- {context}")
    members = report.get("config", {}).get("model", {}).get("ensemble", 1)
    if members > 1:
        lines.append(f"- model: an ensemble of {members} (mean softmax probability, joined embeddings)")
    if report.get("world_size", 1) > 1:
        batch = report.get("config", {}).get("train", {}).get("batch_size")
        lines.append(f"- trained data-parallel on {report['world_size']} processes (torchrun), "
                     f"global batch {batch}")
    if report.get("linear_probe"):
        probe = report["linear_probe"]
        lines.append(f"- {PROBE_ROW}: {probe['method']}; {probe['c_rule']} (trained on the training "
                     f"actors only)")
    if report.get("refit"):
        lines.append(f"- refit: trained on the training actors and the former validation actors "
                     f"{', '.join(map(str, report['refit']['val_actors']))} for {report.get('epoch')} "
                     f"epochs, the count chosen on them")
    lines.append("")
    lines += _headline_lines(report)
    for part, title in (("test", "Test"), ("val", "Validation")):
        if part in report["results"]:
            lines += _part_lines(title, report["results"][part], report["label_names"],
                                 detail=part == "test")
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{k}]({v})" for k, v in report["plots"].items()] + [""]
    return "\n".join(lines)


def render_summary_markdown(summary: dict[str, Any], *, title: str, notes: Sequence[str] = ()) -> str:
    """Per-fold table with mean ± std (in %), one metric per row; `notes` are listed first."""
    folds = [str(f) for f in summary["folds"]]
    rows = []
    for key, mean in summary["mean"].items():
        std = summary["std"][key]
        rows.append([key] + [pct(summary["per_fold"][f][key]) for f in folds] + [pct_spread(mean, std)])
    lines = [f"# {title}", ""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    lines += [f"{summary['part']} scores in %, over {len(folds)} fold(s); "
             f"± is the standard deviation over folds (ddof={summary['std_ddof']}).", ""]
    return "\n".join(lines + _table(["metric"] + [f"fold {f}" for f in folds] + ["mean ± std"], rows)) + "\n"


def write_fold_report(out_dir: str | Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", render_fold_markdown(report))
    return out_dir / "report.json", out_dir / "report.md"


def write_summary(out_dir: str | Path, reports: Sequence[dict[str, Any]], *, title: str,
                  extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write the multi-fold ``report.json`` / ``report.md`` (test and, if present, validation)."""
    out_dir = Path(out_dir)
    # Test first; MELD without its test split has the validation (dev) part only.
    summary = {p: aggregate_folds(reports, p) for p in ("test", "val")
               if all(p in r["results"] for r in reports)}
    if not summary:
        raise BadInput("no part scored in every fold report")
    doc = {**(extra or {}), "summary": summary,
           "folds": {str(r["fold"]): {k: r.get(k) for k in ("split", "n_clips", "checkpoint", "backbones")}
                     for r in reports}}
    atomic_write_json(out_dir / "report.json", doc)
    notes = [_backbone_line(reports[0].get("backbones", {}))]
    notes += [f"fold {r['fold']}: test actors {actors_text(r['split']['test'])}"
              for r in reports if (r.get("split") or {}).get("test")]
    main = main_part(summary)
    text = render_summary_markdown(summary[main], title=title, notes=notes)
    if main == "test" and "val" in summary:
        text += "\n" + render_summary_markdown(summary["val"], title="Validation").replace("# ", "## ", 1)
    atomic_write_text(out_dir / "report.md", text)
    return out_dir / "report.json", out_dir / "report.md"
