"""Evaluation of embedded clip sets: FAISS kNN, softmax head, metrics, plots, reports.

The scoring here is a pure function of the model's outputs (:class:`EmbeddedSet`):
the training clips are the kNN reference, every other part (validation, test, or the
clips of another data root) is scored against them. Turning a checkpoint into
embedded sets lives in :mod:`mmer.eval.checkpoint`.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmer.config import EvalConfig
from mmer.eval.knn import knn_predict_many
from mmer.eval.metrics import classification_metrics, embedding_metrics
from mmer.viz.confusion import plot_confusion
from mmer.viz.tsne import Colouring, plot_tsne, tsne_2d

log = logging.getLogger(__name__)


@dataclass
class EmbeddedSet:
    """Model outputs for N clips: embedding (N, E), logits (N, K), labels (N,), ids, speakers."""

    embedding: np.ndarray
    logits: np.ndarray
    labels: np.ndarray
    clip_ids: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.embedding = np.asarray(self.embedding, dtype=np.float32)
        self.logits = np.asarray(self.logits, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.labels)
        if self.embedding.shape[0] != n or self.logits.shape[0] != n:
            raise ValueError(f"embedding {self.embedding.shape}, logits {self.logits.shape} and "
                             f"labels {self.labels.shape} disagree on the number of clips")

    def __len__(self) -> int:
        return len(self.labels)


def score_part(reference: EmbeddedSet, query: EmbeddedSet, label_names: Sequence[str],
               eval_cfg: EvalConfig) -> dict[str, Any]:
    """Softmax-head, kNN (every k in ``eval_cfg.k``) and embedding metrics of `query`.

    The kNN vote and the retrieval metrics use `reference` (the training clips).
    """
    n_classes = len(label_names)
    knn = knn_predict_many(reference.embedding, reference.labels, query.embedding,
                           eval_cfg.k, n_classes, temperature=eval_cfg.knn_temperature)
    return {
        "softmax": classification_metrics(query.labels, query.logits.argmax(axis=1), label_names),
        "knn": {str(k): classification_metrics(query.labels, res.pred, label_names)
                for k, res in knn.items()},
        "embedding": embedding_metrics(query.embedding, query.labels,
                                       reference.embedding, reference.labels),
    }


def score_sets(sets: dict[str, EmbeddedSet], label_names: Sequence[str],
               eval_cfg: EvalConfig) -> dict[str, dict[str, Any]]:
    """Score every part but ``"train"`` against ``sets["train"]``: {part: score_part(...)}."""
    if "train" not in sets or len(sets["train"]) == 0:
        raise ValueError("scoring needs the training clips as the kNN reference")
    results = {}
    for part, query in sets.items():
        if part == "train":
            continue
        if len(query) == 0:
            log.warning("no %s clips to score; skipped", part)
            continue
        results[part] = score_part(sets["train"], query, label_names, eval_cfg)
    return results


def speaker_colourings(speakers: Sequence[str], dataset: str) -> list[Colouring]:
    """Ways to colour a t-SNE beyond emotion: by actor and, for RAVDESS, by gender.

    RAVDESS actors with odd numbers are male, even numbers female (RAVDESS README).
    """
    if not speakers:
        return []
    numeric = all(str(s).isdigit() for s in speakers)
    order = sorted(set(speakers), key=lambda s: int(s) if numeric else s)
    out = [Colouring("actor", [f"actor {s}" for s in speakers], [f"actor {s}" for s in order])]
    if dataset == "ravdess" and numeric:
        out.append(Colouring("gender", ["male" if int(s) % 2 else "female" for s in speakers]))
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
