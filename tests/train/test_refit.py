"""train.refit: the validation actors choose the epoch count in <fold>/select/, then a model
trained on training + validation actors for that many epochs becomes the fold's best.pt.
Also model.ensemble end to end through train.py and evaluate.py."""
from __future__ import annotations

import json

import numpy as np
import pytest

import evaluate
import train
from mmer.run.folder import load_checkpoint, model_from_checkpoint
from mmer.train import loop as training
from tests.helpers.ablation import tiny_args, tiny_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    with tiny_data(tmp_path_factory, "refit") as (root, audio, table):
        yield root, tiny_args(root, audio, table, "model.modalities=[visual]", "model.fusion=concat",
                              "train.epochs=4"), table


def test_refit_trains_on_train_and_val_for_the_chosen_epochs(data, monkeypatch):
    root, args, table = data
    args = [*args, "--set", "train.refit=true", "--run-name", "refit", "--folds", "all", "--extract"]
    assert train.main(args) == 0
    fold = root / "runs" / "refit" / "fold_0"
    chosen = load_checkpoint(fold / "select" / "best.pt")
    refit = load_checkpoint(fold / "best.pt")
    sel_actors, actors = chosen["split"]["actors"], refit["split"]["actors"]
    assert sel_actors["test"] == actors["test"] == [1, 2] and sel_actors["val"] == [3]
    assert sorted(actors["train"]) == sorted(sel_actors["train"] + sel_actors["val"]) and actors["val"] == []
    assert refit["split"]["refit"]["val_actors"] == [3]
    assert refit["epoch"] == chosen["best"]["epoch"] <= 4
    assert refit["best"]["selected_by"] == "last epoch (no validation)"
    assert set(refit["split"]["clips"]["train"]) == set(chosen["split"]["clips"]["train"]
                                                         + chosen["split"]["clips"]["val"])
    # the standardiser saw training + validation actors (3 and 4), never the test actors 1-2
    model, _ = model_from_checkpoint(refit)
    rows = [r.split(",") for r in table.read_text().splitlines()[1:]]
    fit_rows = np.array([[float(v) for v in r[1:]] for r in rows if int(r[0][-2:]) in (3, 4)])
    np.testing.assert_allclose(model.norms["visual"].mean.numpy(), fit_rows.mean(axis=0), atol=1e-4)
    summary = json.loads((root / "runs" / "refit" / "summary.json").read_text())
    per_fold = summary["folds"]
    # the fold keeps the selection's validation score (the refit model has no validation)
    assert per_fold["0"]["val_uar"] == pytest.approx(chosen["best"]["val_uar"])
    assert summary["select_test_accuracy"]["mean"] == pytest.approx(
        np.mean([per_fold[f]["select_test_accuracy"] for f in per_fold]))

    assert evaluate.main(["--run", str(root / "runs" / "refit"), "--no-plots"]) == 0
    text = (fold / "report.md").read_text()
    assert f"former validation actors 3 for {refit['epoch']} epochs" in text

    # a rerun of the finished run trains nothing
    def refuse(*a, **k):
        raise AssertionError("a finished fold was trained again")
    monkeypatch.setattr(training, "train_one_epoch", refuse)
    assert train.main(args) == 0


def test_refit_without_validation_actors_is_refused(data, caplog):
    _, args, _ = data
    assert train.main([*args, "--set", "train.refit=true", "--set", "split.n_val_actors=0",
                       "--run-name", "refit0", "--extract"]) == 2
    assert "train.refit needs validation clips" in caplog.text


def test_a_run_without_validation_says_so(data):
    root, args, _ = data
    assert train.main([*args, "--set", "split.n_val_actors=0", "--run-name", "noval", "--folds", "all",
                       "--extract"]) == 0
    best = load_checkpoint(root / "runs" / "noval" / "fold_0" / "best.pt")["best"]
    assert best["val_uar"] is None and best["selected_by"] == "last epoch (no validation)"
    summary = json.loads((root / "runs" / "noval" / "summary.json").read_text())
    assert summary["val_uar"]["mean"] is None and summary["test_accuracy"]["mean"] is not None
    table = (root / "runs" / "noval" / "summary.md").read_text()
    assert "no validation" in table and "-1.0000" not in table, table
    assert evaluate.main(["--run", str(root / "runs" / "noval"), "--no-plots"]) == 0


def test_an_ensemble_run_is_evaluated_like_any_other(data):
    root, args, _ = data
    assert train.main([*args, "--set", "model.ensemble=3", "--run-name", "ens", "--extract"]) == 0
    assert evaluate.main(["--run", str(root / "runs" / "ens"), "--no-plots"]) == 0
    report = json.loads((root / "runs" / "ens" / "fold_0" / "report.json").read_text())
    softmax = report["results"]["test"]["softmax"]
    confusion = np.asarray(softmax["confusion"])
    assert confusion.sum() == report["n_clips"]["test"] > 0
    assert softmax["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert "an ensemble of 3" in (root / "runs" / "ens" / "fold_0" / "report.md").read_text()
    model, _ = model_from_checkpoint(root / "runs" / "ens" / "fold_0" / "best.pt")
    assert len(model.members) == 3
