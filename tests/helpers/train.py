"""A fabricated in-memory fold and a tiny config for the training tests, and a check that
two fold folders ended alike."""
from __future__ import annotations

import pytest
import torch

import mmer.train.loop as training
from mmer.config import Config
from mmer.inputs.datasets import FeatureDataset
from mmer.io import SkipList
from mmer.run.folder import load_checkpoint, read_metrics
from mmer.train.data import FoldData, fold_data

NAMES = ["neutral", "calm", "happy", "sad"]


def entries(actors, per_class=3, seed=0):
    """Clips whose log-mel mean and audio vector depend on the class (learnable)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for actor in actors:
        for c in range(len(NAMES)):
            for i in range(per_class):
                out.append({"clip_id": f"{actor}-{c}-{i}", "label": c, "speaker": str(actor),
                            "group": f"{c}{i}", "extra": {},
                            "audio": (torch.randn(3, 8, generator=gen) + c).half(),
                            "logmel": (torch.randn(3, 1, 8, 12, generator=gen) + 0.5 * c).half()})
    return out


def tiny_cfg(tmp_path, **train) -> Config:
    cfg = Config()
    cfg.model.modalities = ["audio"]
    cfg.model.fusion = "concat"
    cfg.model.audio_encoder = "resnet18"
    cfg.model.audio_width = 2
    cfg.model.d_model, cfg.model.n_heads, cfg.model.embed_dim, cfg.model.dropout = 16, 2, 8, 0.1
    t = cfg.train
    t.epochs, t.batch_size, t.m_per_class, t.lr, t.warmup_epochs = 4, 8, 2, 3e-3, 1
    t.runs_dir, t.device = str(tmp_path), "cpu"
    t.augment.time_masks, t.augment.freq_masks, t.augment.random_crop = 1, 1, True
    t.augment.mixup_alpha = 0.4
    cfg.loss.label_smoothing = 0.1
    for k, v in train.items():
        setattr(t, k, v)
    return cfg


def fold(cfg) -> FoldData:
    def make(actors, seed):
        return FeatureDataset(entries(actors, seed=seed), ["logmel"], augment=cfg.train.augment,
                              seed=cfg.train.seed)
    parts = {"train": make([1, 2], 0), "val": make([3], 1), "test": make([4], 2)}
    split = {"train": [1, 2], "val": [3], "test": [4], "fold": 0}
    return FoldData(parts, split, NAMES, {}, SkipList())


def assert_same_run(a, b, *, epochs: int) -> list[dict]:
    """Fold folders `a` and `b` ended alike: last.pt after `epochs` epochs with equal
    weights, and equal metrics.jsonl rows but for the throughput; returns those rows."""
    last_a, last_b = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert last_a["epoch"] == last_b["epoch"] == epochs
    for key, value in last_a["model"].items():
        assert torch.equal(value, last_b["model"][key]), key
    rows_a, rows_b = ([{k: v for k, v in r.items() if k != "train_clips_per_s"}
                       for r in read_metrics(d / "metrics.jsonl")] for d in (a, b))
    assert rows_a == rows_b
    return rows_a


def straight_and_resumed(cfg: Config, runs, monkeypatch: pytest.MonkeyPatch, *, epochs: int):
    """Train fold 0 once straight through and once killed in epoch 2 then resumed, under
    ``runs/{straight,resumed}/fold_0``; check the two folders ended alike; return both results."""
    straight = training.train_fold(cfg, fold_data(cfg, 0), runs / "straight" / "fold_0")
    real, calls = training.train_one_epoch, {"n": 0}

    def killed_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        training.train_fold(cfg, fold_data(cfg, 0), runs / "resumed" / "fold_0")
    monkeypatch.setattr(training, "train_one_epoch", real)
    resumed = training.train_fold(cfg, fold_data(cfg, 0), runs / "resumed" / "fold_0")
    assert_same_run(runs / "straight" / "fold_0", runs / "resumed" / "fold_0", epochs=epochs)
    return straight, resumed
