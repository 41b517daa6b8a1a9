"""train_fold on fabricated in-memory data: resume equals an uninterrupted run, checkpoints,
best by validation UAR, non-finite loss; LR schedule."""
from __future__ import annotations

import json
import math

import pytest
import torch

import mmer.train.loop as training
from mmer.run.folder import load_checkpoint, model_from_checkpoint, read_metrics
from mmer.train.engine import NonFiniteLossError
from mmer.train.loop import lr_lambda, train_fold
from tests.helpers.train import NAMES, assert_same_run, fold, tiny_cfg

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


def test_resume_reaches_the_same_weights_and_metrics(tmp_path, monkeypatch):
    cfg = tiny_cfg(tmp_path)
    straight = train_fold(cfg, fold(cfg), tmp_path / "straight")

    real = training.train_one_epoch
    calls = {"n": 0}

    def killed_in_epoch_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the job is killed during epoch 3
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_fold(cfg, fold(cfg), tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2
    monkeypatch.setattr(training, "train_one_epoch", real)
    resumed = train_fold(cfg, fold(cfg), tmp_path / "resumed")

    rows = assert_same_run(tmp_path / "straight", tmp_path / "resumed", epochs=4)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert straight == resumed


def test_run_folder_checkpoints_and_best_by_validation_uar(tmp_path):
    cfg = tiny_cfg(tmp_path, epochs=3)
    out = tmp_path / "run" / "fold_0"
    result = train_fold(cfg, fold(cfg), out)
    for name in ("config.yaml", "split.json", "metrics.jsonl", "last.pt", "best.pt", "skipped.tsv"):
        assert (out / name).is_file(), name
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    assert json.loads((out / "split.json").read_text())["test"] == [4]
    rows = read_metrics(out / "metrics.jsonl")
    best_row = max(rows, key=lambda r: (r["val_uar"], -r["epoch"]))
    best = load_checkpoint(out / "best.pt")
    assert best["best"]["epoch"] == best_row["epoch"] == result["epoch"]
    assert result["val_uar"] == pytest.approx(best_row["val_uar"])
    assert best["split"]["val"] == [3] and best["label_names"] == NAMES
    model, ckpt = model_from_checkpoint(out / "best.pt")  # rebuilt from the checkpoint alone
    assert ckpt["input_shapes"] == {"logmel": [3, 1, 8, 12]}
    assert {"test_accuracy", "test_uar"} <= set(result)
    assert not model.training


def test_ensemble_trains_saves_and_reloads(tmp_path):
    cfg = tiny_cfg(tmp_path, epochs=2)
    cfg.model.ensemble = 2
    out = tmp_path / "ens" / "fold_0"
    result = train_fold(cfg, fold(cfg), out)
    model, _ = model_from_checkpoint(out / "best.pt")
    assert len(model.members) == 2 and {"test_accuracy", "test_uar"} <= set(result)
    sd = model.state_dict()
    assert not torch.equal(sd["members.0.head.classifier.weight"], sd["members.1.head.classifier.weight"])


def test_changed_config_is_not_resumed_silently(tmp_path):
    cfg = tiny_cfg(tmp_path, epochs=1)
    train_fold(cfg, fold(cfg), tmp_path / "r")
    cfg.train.lr = 1e-2
    with pytest.raises(ValueError, match=r"train\.lr"):
        train_fold(cfg, fold(cfg), tmp_path / "r")


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    cfg = tiny_cfg(tmp_path, epochs=2)
    data = fold(cfg)
    data.parts["train"].inputs["logmel"][0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 1"):
        train_fold(cfg, data, tmp_path / "nan")
    assert not (tmp_path / "nan" / "last.pt").exists()


def test_warmup_then_cosine():
    f = lr_lambda(total_steps=10, warmup_steps=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(10) == pytest.approx(0.0)
