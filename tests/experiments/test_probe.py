"""The linear-probe baseline: pooling, the probe on synthetic features, and the command end to
end on the tiny synthetic RAVDESS (extract -> probe, beside a run's summary.json)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmer.cli.extract import main as extract_main
from mmer.cli.probe import main as probe_main
from mmer.cli.probe import model_figures
from mmer.config import load_config
from mmer.datasets import get_adapter
from mmer.datasets.splits import fold_split, record_actors, split_records
from mmer.experiments.probe import C_GRID, linear_probe, pool_inputs, pool_key

NAMES = ["neutral", "happy", "angry"]
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ravdess_audio.yaml"


def test_pooling_of_vectors_sequences_and_maps():
    vec = torch.arange(6.0).reshape(2, 3)
    assert np.array_equal(pool_key(vec), vec.numpy())
    seq = torch.tensor([[[0.0, 2.0], [2.0, 6.0]]])  # (N=1, S=2, D=2)
    assert np.array_equal(pool_key(seq), [[1.0, 4.0, 1.0, 2.0]])  # means, then (population) stds
    maps = seq[..., None, None].expand(1, 2, 2, 3, 4).clone()  # (N, S, C, H, W), constant maps
    maps[..., 0, 0] += 12.0  # one pixel of 12: the spatial mean adds 1
    assert np.array_equal(pool_key(maps), [[2.0, 5.0, 1.0, 2.0]])
    both = pool_inputs({"visual": vec[:1], "audio": seq, "input_ids": torch.zeros(1, 5)})
    assert np.array_equal(both, [[1.0, 4.0, 1.0, 2.0, 0.0, 1.0, 2.0]])  # sorted keys, no token ids


def _part(n_per_class: int, seed: int, *, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """(3 n, 6) features: class axis c is 1 in dims c and c + 3, plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    x = np.concatenate([np.eye(3)[y], np.eye(3)[y]], axis=1) + spread * rng.normal(size=(len(y), 6))
    return x, y


def test_probe_separates_separable_features():
    train, val, test = _part(10, 0, spread=0.1), _part(4, 1, spread=0.1), _part(8, 2, spread=0.1)
    result = linear_probe(train, val, test, NAMES, metric="uar")
    assert result.metrics["n"] == 24
    assert result.metrics["accuracy"] == 1.0 and result.metrics["uar"] == 1.0
    assert result.metrics["weighted_f1"] == 1.0
    assert set(result.val_scores) == {f"{c:g}" for c in C_GRID}
    # Every C separates the validation part; ties keep the first (smallest) C.
    assert result.c == C_GRID[0]


def test_probe_on_shuffled_labels_stays_near_chance():
    train, val, test = _part(40, 0, spread=0.3), _part(20, 1, spread=0.3), _part(100, 2, spread=0.3)
    real = linear_probe(train, val, test, NAMES)
    assert real.metrics["accuracy"] >= 0.95
    # Each clip's label drawn anew: the features say nothing about it.
    rng = np.random.default_rng(3)
    train, val, test = ((x, rng.permutation(y)) for x, y in (train, val, test))
    shuffled = linear_probe(train, val, test, NAMES)
    assert abs(shuffled.metrics["accuracy"] - 1 / 3) < 0.1, shuffled.metrics
    assert abs(shuffled.metrics["uar"] - 1 / 3) < 0.1
    # The kept C is the best on validation.
    assert shuffled.val_scores[f"{shuffled.c:g}"] == max(shuffled.val_scores.values())
    assert len(set(shuffled.val_scores.values())) > 1


def test_probe_without_validation_uses_c_1():
    train, test = _part(10, 0, spread=0.1), _part(4, 2, spread=0.1)
    result = linear_probe(train, None, test, NAMES)
    assert result.c == 1.0 and result.val_scores == {} and result.metrics["accuracy"] == 1.0


@pytest.mark.slow
def test_probe_command_on_synthetic_ravdess(synthetic_ravdess, tmp_path, one_thread):
    overrides = [f"ravdess.root={synthetic_ravdess}", "audio.functionals=none", "audio.n_mels=32",
                 "audio.n_segments=3", "audio.clip_seconds=1.0", "split.n_folds=3",
                 "split.n_val_actors=1", f"features.cache_dir={tmp_path / 'cache'}",
                 f"train.runs_dir={tmp_path / 'runs'}"]
    sets = [a for o in overrides for a in ("--set", o)]
    assert extract_main(["--config", str(CONFIG), *sets]) == 0
    run = tmp_path / "runs" / "ravdess_audio"
    run.mkdir(parents=True)  # a model's train.py summary, read beside the probe
    (run / "summary.json").write_text(json.dumps({"folds": {"1": {"test_accuracy": 0.5, "test_uar": 0.4}}}))
    assert probe_main(["--config", str(CONFIG), *sets, "--folds", "all"]) == 0
    doc = json.loads((run / "probe.json").read_text())
    assert (run / "probe.md").read_text().startswith("# Linear probe of `ravdess_audio` (test part)")
    cfg = load_config(CONFIG, overrides)
    records, _ = get_adapter(cfg).records(cfg)
    for fold in range(3):
        test = split_records(records, fold_split(record_actors(records), cfg.split, fold))["test"]
        assert doc["folds"][str(fold)]["n"] == len(test) == 12
    assert doc["folds"]["1"]["model"] == {"accuracy": 0.5, "uar": 0.4, "weighted_f1": None}
    assert doc["folds"]["0"]["model"] is None
    assert doc["mean_std"]["probe"]["accuracy"]["mean"] > 0.0


def test_model_figures_prefer_each_folds_report(tmp_path):
    for fold, acc in ((0, 0.75), (1, 0.5)):
        softmax = {"accuracy": acc, "uar": acc - 0.1, "weighted_f1": acc - 0.2, "n": 8}
        (tmp_path / f"fold_{fold}").mkdir()
        (tmp_path / f"fold_{fold}" / "report.json").write_text(json.dumps({"results": {"test": {"softmax": softmax}}}))
    (tmp_path / "summary.json").write_text(json.dumps({"folds": {"0": {"test_accuracy": 0.1}}}))
    figures, source = model_figures(tmp_path, [0, 1], "test")
    assert figures == {0: {"accuracy": 0.75, "uar": 0.65, "weighted_f1": 0.55},
                       1: {"accuracy": 0.5, "uar": 0.4, "weighted_f1": 0.3}}
    assert source.endswith("report.json (softmax head)")
    assert model_figures(tmp_path, [0], "val") == ({}, None)
