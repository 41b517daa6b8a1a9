"""Scoring embedded sets, plots and report files, on synthetic embeddings (no model)."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from mmer.config import EvalConfig
from mmer.eval.evaluate import EmbeddedSet, make_plots, score_sets, speaker_colourings

NAMES = ["neutral", "calm", "happy", "sad"]


def _set(labels, speakers, *, spread: float, seed: int, logit_noise: float) -> EmbeddedSet:
    """Embeddings near the class axis (more `spread`: more overlap); logits likewise."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    emb = np.eye(8)[labels] + spread * rng.normal(size=(len(labels), 8))
    logits = 3.0 * np.eye(4)[labels] + logit_noise * rng.normal(size=(len(labels), 4))
    return EmbeddedSet(emb, logits, labels, [f"clip{i}" for i in range(len(labels))],
                       [str(s) for s in speakers])


@pytest.fixture()
def sets():
    train = _set(np.tile(np.arange(4), 6), np.repeat([1, 2, 3], 8), spread=0.1, seed=0, logit_noise=0.1)
    test = _set(np.tile(np.arange(4), 4), np.repeat([5, 6], 8), spread=0.1, seed=1, logit_noise=0.1)
    val = _set(np.arange(4), [4] * 4, spread=0.1, seed=2, logit_noise=0.1)
    return {"train": train, "val": val, "test": test}


def test_separable_sets_score_perfectly(sets):
    results = score_sets(sets, NAMES, EvalConfig(k=[1, 3]))
    assert set(results) == {"val", "test"}
    test = results["test"]
    assert test["softmax"]["accuracy"] == 1.0
    assert set(test["knn"]) == {"1", "3"}
    assert all(m["uar"] == 1.0 for m in test["knn"].values())
    assert test["embedding"] == pytest.approx({"precision_at_1": 1.0, "map_at_r": 1.0})
    assert test["softmax"]["n"] == 16 and results["val"]["softmax"]["n"] == 4


def test_knn_and_softmax_are_scored_separately(sets):
    # Softmax head right everywhere; embeddings of the test set moved onto the wrong axis.
    sets["test"].embedding = np.roll(sets["test"].embedding, 1, axis=1)
    results = score_sets(sets, NAMES, EvalConfig(k=[1]))["test"]
    assert results["softmax"]["accuracy"] == 1.0
    assert results["knn"]["1"]["accuracy"] == 0.0
    assert results["embedding"]["precision_at_1"] == 0.0


def test_scoring_needs_training_clips(sets):
    with pytest.raises(ValueError, match="training clips"):
        score_sets({"test": sets["test"]}, NAMES, EvalConfig())


def test_embedded_set_checks_sizes():
    with pytest.raises(ValueError):
        EmbeddedSet(np.zeros((3, 4)), np.zeros((2, 4)), np.zeros(3))


def test_speaker_colourings():
    cols = speaker_colourings(["10", "2", "1"], "ravdess")
    assert [c.title for c in cols] == ["actor", "gender"]
    assert list(cols[0].order) == ["actor 1", "actor 2", "actor 10"]
    assert list(cols[1].values) == ["female", "female", "male"]
    assert [c.title for c in speaker_colourings(["Ross", "Rachel"], "meld")] == ["actor"]


def test_plots_written_and_open(sets, tmp_path):
    results = score_sets(sets, NAMES, EvalConfig(k=[1, 3]))
    plots = make_plots(tmp_path, sets, results, NAMES, dataset="ravdess", perplexity=30.0)
    assert sorted(plots.values()) == ["confusion_test_knn_k1.png", "confusion_test_knn_k3.png",
                                      "confusion_test_softmax.png", "tsne_test.png"]
    for name in plots.values():
        img = mpimg.imread(tmp_path / name)
        assert img.shape[0] > 300 and img.shape[1] > 600
