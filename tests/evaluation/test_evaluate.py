"""Scoring embedded sets, plots and report files, on synthetic embeddings (no model)."""
from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from mmer.config import EvalConfig
from mmer.evaluation.evaluate import EmbeddedSet, make_plots, score_sets, speaker_colourings

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
    many = speaker_colourings(["Ross"] * 3 + ["Rachel"] * 2 + ["Joey"], "meld", max_speakers=2)
    assert list(many[0].values) == ["actor Ross"] * 3 + ["actor Rachel"] * 2 + ["other"]


def test_plots_written_and_open(sets, tmp_path):
    results = score_sets(sets, NAMES, EvalConfig(k=[1, 3]))
    plots = make_plots(tmp_path, sets, results, NAMES, dataset="ravdess", perplexity=30.0)
    assert sorted(plots.values()) == ["confusion_test_knn_k1.png", "confusion_test_knn_k3.png",
                                      "confusion_test_softmax.png", "tsne_test.png"]
    for name in plots.values():
        img = mpimg.imread(tmp_path / name)
        assert img.shape[0] > 300 and img.shape[1] > 600


@pytest.mark.slow
def test_evaluate_run_writes_fold_and_summary_reports(tiny_run):
    import evaluate

    assert evaluate.main(["--run", str(tiny_run.run_dir)]) == 0
    summary = json.loads((tiny_run.run_dir / "report.json").read_text())
    assert summary["summary"]["test"]["folds"] == [0, 1, 2]
    accs = []
    for fold in range(3):
        fold_dir = tiny_run.run_dir / f"fold_{fold}"
        report = json.loads((fold_dir / "report.json").read_text())
        assert report["split"]["test"] == [2 * fold + 1, 2 * fold + 2]
        assert report["n_clips"] == {"train": 18, "val": 6, "test": 12}
        assert report["backbones"]["random"] is True
        assert report["config"]["model"]["d_model"] == 16
        assert set(report["results"]["test"]["knn"]) == {"1", "3"}
        # The test clips scored are exactly the ones training held out.
        split = json.loads((fold_dir / "split.json").read_text())
        assert report["clips"]["test"] == split["clips"]["test"]
        for name in report["plots"].values():
            assert mpimg.imread(fold_dir / name).shape[0] > 300
        assert "randomly initialised" in (fold_dir / "report.md").read_text()
        accs.append(report["results"]["test"]["softmax"]["accuracy"])
    key = "softmax head / accuracy"
    assert summary["summary"]["test"]["mean"][key] == pytest.approx(np.mean(accs))
    # train.py scored best.pt on the test fold too: the same model must give the same number.
    train_summary = json.loads((tiny_run.run_dir / "summary.json").read_text())
    assert [train_summary["folds"][str(f)]["test_accuracy"] for f in range(3)] == pytest.approx(accs)


@pytest.mark.slow
def test_checkpoint_model_comes_from_the_checkpoint(tiny_run, tmp_path):
    from mmer.evaluation.evaluate import evaluate_checkpoint

    # Changing the YAML after training must not matter: the config is read from best.pt.
    saved = tiny_run.config.read_text()
    tiny_run.config.write_text("model: {d_model: 999}\n")
    try:
        report = evaluate_checkpoint(tiny_run.run_dir / "fold_1" / "best.pt", out_dir=tmp_path, plots=False)
    finally:
        tiny_run.config.write_text(saved)  # the session's run is shared with other modules
    assert report["config"]["model"]["d_model"] == 16 and report["fold"] == 1
    assert (tmp_path / "report.md").is_file() and not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_other_data_root(tiny_run):
    import evaluate
    from mmer.synth.ravdess import make_ravdess_set

    make_ravdess_set(tiny_run.tmp / "other", actors=(7, 8), emotions=(1, 3, 5), statements=(1,),
                     repetitions=(1,), intensities=(1,), size=(64, 48), fps=15.0, seconds=1.5)
    other = tiny_run.tmp / "other" / "Actors"
    args = ["--checkpoint", str(tiny_run.run_dir / "fold_0" / "best.pt"), "--data-root", str(other)]
    assert evaluate.main(args) == 2  # no features yet for the other root: a clear refusal
    assert evaluate.main(args + ["--extract"]) == 0
    out = tiny_run.run_dir / "fold_0" / "eval_other_Actors"
    report = json.loads((out / "report.json").read_text())
    assert report["n_clips"] == {"train": 18, "test": 6}
    assert sorted({c.split("-")[-1] for c in report["clips"]["test"]}) == ["07", "08"]
    assert "val" not in report["results"] and report["data_root"] == str(other)
    _probe_matches_a_direct_fit(tiny_run.run_dir / "fold_0", report, other)
    assert evaluate.main(args + ["--data-set", "model.d_model=3"]) == 2  # model settings refused


def _probe_matches_a_direct_fit(fold, report, other):
    """The other data's probe row: standardised logistic regression with the C training
    chose, fitted on the fold's training clips' pooled inputs, predicting the other clips."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from mmer.evaluation.sets import fold_entries, model_keys

    c = json.loads((fold / "linear_probe.json").read_text())["c"]
    assert report["linear_probe"]["c"] == c and "fitted on its training part" in report["linear_probe"]["c_rule"]
    ckpt = torch.load(fold / "best.pt", weights_only=False)
    entries, cfg = fold_entries(ckpt, data_root=str(other))
    keys = sorted(model_keys(cfg))

    def pooled(part):
        x = [np.concatenate([_mean_std(e[k].float().numpy()) for k in keys]) for e in entries[part]]
        return np.stack(x), np.array([int(e["label"]) for e in entries[part]])

    (tx, ty), (sx, sy) = pooled("train"), pooled("test")
    scaler = StandardScaler().fit(tx)
    fit = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(tx), ty)
    expected = float(np.mean(fit.predict(scaler.transform(sx)) == sy))
    assert report["results"]["test"]["probe"]["accuracy"] == pytest.approx(expected)
    assert report["results"]["test"]["probe"]["n"] == len(sy) == report["n_clips"]["test"]


def _mean_std(x):
    """(D,) as it is; (S, D, *spatial) -> (2D,): spatial means, then mean and std over S."""
    if x.ndim == 1:
        return x
    if x.ndim > 2:
        x = x.reshape(x.shape[0], x.shape[1], -1).mean(-1)
    return np.concatenate([x.mean(0), x.std(0)])
