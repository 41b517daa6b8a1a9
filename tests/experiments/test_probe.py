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
from mmer.cli.results import main as results_main
from mmer.config import load_config
from mmer.datasets import get_adapter
from mmer.datasets.splits import fold_split, record_actors, split_records
from mmer.inputs.datasets import FeatureDataset
from mmer.io import SkipList
from mmer.metrics.probe import C_GRID, linear_probe, pool_inputs, pool_key
from mmer.run.folder import read_fold_probe
from mmer.train import loop
from mmer.train.data import FoldData, fold_data
from mmer.train.probe import probe_fold_data, train_fold_probe

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


def test_probe_with_one_given_c_and_no_validation_fits_that_c():
    train, test = _part(30, 0, spread=0.8), _part(30, 2, spread=0.8)
    given = {c: linear_probe(train, None, test, NAMES, grid=(c,)) for c in (1e-3, 1e2)}
    assert [r.c for r in given.values()] == [1e-3, 1e2] and all(r.val_scores == {} for r in given.values())
    # Strong and weak regularisation predict differently on these noisy classes.
    assert given[1e-3].metrics["confusion"] != given[1e2].metrics["confusion"]
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(train[0])
    direct = LogisticRegression(C=1e-3, max_iter=5000).fit(scaler.transform(train[0]), train[1])
    expected = np.mean(direct.predict(scaler.transform(test[0])) == test[1])
    assert given[1e-3].metrics["accuracy"] == pytest.approx(expected)


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


def _dataset(x: np.ndarray, y: np.ndarray, actor: int) -> FeatureDataset:
    """A fold part of (N, 6) features as (N, 2, 3) sequences, as the cache gives them."""
    return FeatureDataset([{"audio": row.reshape(2, 3).astype(np.float32), "label": int(label),
                            "clip_id": f"{actor}-{i}", "speaker": str(actor)}
                           for i, (row, label) in enumerate(zip(x, y, strict=True))], ["audio"])


def _fold(train, val, test) -> FoldData:
    parts = {"train": _dataset(*train, 1), "val": _dataset(*val, 2), "test": _dataset(*test, 3)}
    return FoldData(parts=parts, split={}, label_names=NAMES, extra_classes={}, skips=SkipList())


def test_test_labels_never_choose_c():
    train, val, test = _part(12, 0, spread=1.2), _part(12, 1, spread=1.2), _part(12, 2, spread=1.2)
    rng = np.random.default_rng(5)
    shuffles = [rng.permutation(test[1]) for _ in range(6)]
    folds = [_fold(train, val, (test[0], y)) for y in shuffles]
    probes = [probe_fold_data(fold, "uar") for fold in folds]
    pooled = {p: (pool_inputs(d.inputs), d.labels.numpy()) for p, d in folds[0].parts.items()}
    # What a probe choosing C on the test labels would keep: it changes with the shuffle ...
    leaky = {linear_probe(pooled["train"], (pooled["test"][0], y), (pooled["test"][0], y), NAMES).c
             for y in shuffles}
    assert len(leaky) > 1
    # ... while the probe's C, its validation scores and figures do not move.
    assert {result.c for _, result in probes} == {probes[0][1].c}
    assert all(result.val_scores == probes[0][1].val_scores for _, result in probes)
    assert all(result.val_metrics == probes[0][1].val_metrics for _, result in probes)
    assert len({result.metrics["accuracy"] for _, result in probes}) > 1  # the test part is scored
    part, result = probes[0]
    assert part == "test" and result == linear_probe(pooled["train"], pooled["val"], pooled["test"], NAMES)
    assert result.val_metrics["uar"] == result.val_scores[f"{result.c:g}"]


def test_a_fold_without_test_scores_validation_with_c_1(tmp_path):
    data = _fold(_part(10, 0, spread=0.1), _part(4, 1, spread=0.1), _part(4, 2, spread=0.1))
    data.parts["test"] = None
    scores = train_fold_probe(data, "uar", tmp_path)
    doc = read_fold_probe(tmp_path)
    assert doc["c"] == 1.0 and doc["c_rule"] == "C=1 fixed (no validation part)"
    assert set(doc["results"]) == {"val"} and scores["probe_val_accuracy"] == 1.0
    assert not any(k.startswith("probe_test") for k in scores)


def test_token_ids_only_give_no_probe(tmp_path):
    data = _fold(_part(4, 0, spread=0.1), _part(2, 1, spread=0.1), _part(2, 2, spread=0.1))
    for part in data.parts.values():
        part.inputs = {"input_ids": torch.zeros(len(part), 5)}
    assert train_fold_probe(data, "uar", tmp_path) == {}
    assert read_fold_probe(tmp_path) is None


# ---------------------------------------------------------------- the probe of training runs


def _tiny_cfg(run, *overrides: str):
    return load_config(run.config, list(overrides))


@pytest.mark.slow
def test_training_writes_the_probe_of_each_fold(tiny_run):  # noqa: F811
    cfg = _tiny_cfg(tiny_run)
    summary = json.loads((tiny_run.run_dir / "summary.json").read_text())
    for fold in range(3):
        doc = read_fold_probe(tiny_run.run_dir / f"fold_{fold}")
        # The same numbers as the probe called directly on the fold's own inputs.
        part, direct = probe_fold_data(fold_data(cfg, fold), "uar")
        assert part == "test" and doc["c"] == direct.c and doc["val_scores"] == direct.val_scores
        assert doc["results"] == json.loads(json.dumps({"test": direct.metrics, "val": direct.val_metrics}))
        assert summary["folds"][str(fold)]["test_accuracy"] is not None
    probe = summary["linear_probe"]
    accs = [read_fold_probe(tiny_run.run_dir / f"fold_{f}")["results"]["test"]["accuracy"] for f in range(3)]
    assert probe["test_accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert probe["test_accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
    row = next(x for x in (tiny_run.run_dir / "summary.md").read_text().splitlines() if "linear probe" in x)
    assert f"{np.mean(accs):.4f} ± {np.std(accs, ddof=1):.4f}" in row


@pytest.mark.slow
def test_evaluate_and_results_carry_the_probe_row(tiny_run, tmp_path):  # noqa: F811
    import evaluate

    assert evaluate.main(["--run", str(tiny_run.run_dir), "--no-plots"]) == 0
    accs = []
    for fold in range(3):
        fold_dir = tiny_run.run_dir / f"fold_{fold}"
        report = json.loads((fold_dir / "report.json").read_text())
        doc = read_fold_probe(fold_dir)
        for part in ("test", "val"):
            assert report["results"][part]["probe"] == doc["results"][part]
        acc = doc["results"]["test"]["accuracy"]
        accs.append(acc)
        md = (fold_dir / "report.md").read_text()
        assert f"| linear probe | {100 * acc:.1f} |" in md and doc["c_rule"] in md
    summary = json.loads((tiny_run.run_dir / "report.json").read_text())["summary"]["test"]
    assert summary["mean"]["linear probe / accuracy"] == pytest.approx(np.mean(accs))
    assert "| linear probe / accuracy |" in (tiny_run.run_dir / "report.md").read_text()
    out = tmp_path / "table.md"
    assert results_main([str(tiny_run.run_dir), "--out", str(out), "--knn", "3"]) == 0
    line = next(x for x in out.read_text().splitlines() if x.startswith("| `tiny` linear probe |"))
    arr = 100 * np.asarray(accs)
    assert f"| {arr.mean():.1f} ± {arr.std(ddof=1):.1f} |" in line


@pytest.mark.slow
def test_probe_off_writes_no_probe(tiny_run, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(loop, "train_fold", lambda cfg, data, out_dir, **_: {"test_accuracy": 0.5})
    for setting, expect in (("true", True), ("false", False)):
        out = tmp_path / setting
        result = loop.run_fold(_tiny_cfg(tiny_run, f"eval.probe={setting}"), 0, out)
        assert ("probe_test_accuracy" in result) is expect
        assert (read_fold_probe(out) is not None) is expect
