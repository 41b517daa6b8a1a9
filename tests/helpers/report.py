"""A fabricated fold report, as evaluation writes one."""
from __future__ import annotations

import numpy as np

from mmer.metrics.scores import classification_metrics

NAMES = ["neutral", "happy", "sad"]


def _fold_report(fold: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 5)

    def noisy(p_wrong: float) -> list[int]:
        flip = rng.random(len(y)) < p_wrong
        return np.where(flip, rng.integers(0, 3, len(y)), y).tolist()

    part = {"softmax": classification_metrics(y, noisy(0.3), NAMES),
            "knn": {"1": classification_metrics(y, noisy(0.5), NAMES),
                    "5": classification_metrics(y, noisy(0.4), NAMES)},
            "embedding": {"precision_at_1": float(rng.random()), "map_at_r": float(rng.random())}}
    return {"run": "demo", "fold": fold, "checkpoint": f"runs/demo/fold_{fold}/best.pt",
            "data_root": "data/Actors", "label_names": NAMES,
            "split": {"train": [1, 2], "val": [3], "test": [4 + fold]},
            "n_clips": {"train": 30, "val": 15, "test": 15},
            "backbones": {"random": True, "pretrained": {"video": "random", "audio": "random"}},
            "config": {"name": "demo"}, "results": {"test": part, "val": part},
            "plots": {"t-SNE": "tsne_test.png"}}
