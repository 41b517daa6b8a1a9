"""Report files and multi-fold aggregation (mean and std checked against numpy)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmer.evaluation.report import aggregate_folds, fold_scalars, write_fold_report, write_summary
from mmer.evaluation.sets import backbone_status
from mmer.metrics.scores import classification_metrics
from tests.helpers.report import NAMES, _fold_report


def test_aggregate_matches_numpy():
    reports = [_fold_report(f, seed=10 + f) for f in range(4)]
    summary = aggregate_folds(reports)
    assert summary["folds"] == [0, 1, 2, 3]
    for key in ("softmax head / accuracy", "kNN k=5 / UAR", "embedding / MAP@R"):
        values = [fold_scalars(r)[key] for r in reports]
        assert len(set(values)) > 1  # the folds really differ, so std is a real check
        assert summary["mean"][key] == pytest.approx(np.mean(values))
        assert summary["std"][key] == pytest.approx(np.std(values, ddof=1))
        assert [summary["per_fold"][str(f)][key] for f in range(4)] == values


def test_aggregate_single_fold_has_no_std():
    summary = aggregate_folds([_fold_report(2, seed=0)])
    assert summary["folds"] == [2]
    assert all(v is None for v in summary["std"].values())
    with pytest.raises(ValueError):
        aggregate_folds([])


def test_fold_scalars_order_and_names():
    keys = list(fold_scalars(_fold_report(0, seed=1)))
    assert keys[:2] == ["softmax head / accuracy", "softmax head / UAR"]
    assert "kNN k=1 / macro-F1" in keys and "embedding / precision@1" in keys
    assert keys.index("kNN k=1 / accuracy") < keys.index("kNN k=5 / accuracy")


def test_fold_report_files(tmp_path):
    report = _fold_report(0, seed=3)
    json_path, md_path = write_fold_report(tmp_path, report)
    assert json.loads(json_path.read_text()) == report
    md = md_path.read_text()
    acc = report["results"]["test"]["softmax"]["accuracy"]
    assert f"| softmax head | {100 * acc:.1f} |" in md
    assert "randomly initialised" in md
    assert "test actors: 4 (15 clips)" in md
    assert "| neutral |" in md and "![t-SNE](tsne_test.png)" in md


def test_summary_files(tmp_path):
    reports = [_fold_report(f, seed=f) for f in range(3)]
    json_path, md_path = write_summary(tmp_path, reports, title="Run demo", extra={"run": "demo"})
    doc = json.loads(json_path.read_text())
    assert doc["run"] == "demo" and set(doc["folds"]) == {"0", "1", "2"}
    mean = doc["summary"]["test"]["mean"]["softmax head / UAR"]
    std = doc["summary"]["test"]["std"]["softmax head / UAR"]
    md = md_path.read_text()
    assert f"{100 * mean:.1f} ± {100 * std:.1f}" in md
    assert "| metric | fold 0 | fold 1 | fold 2 | mean ± std |" in md
    assert "## Validation" in md


def test_backbone_line_never_claims_pretrained_without_a_loaded_file():
    from mmer.evaluation.report import _backbone_line

    scratch = {"random": False, "pretrained": {"audio": "log-mel ResNet-18 inside the model, trained from scratch",
                                               "visual": "precomputed features (no backbone)"}}
    assert _backbone_line(scratch).startswith("Backbones: none pretrained")
    loaded = {"random": False, "pretrained": {"video": "r3d_101 loaded (resnet/resnet-101-kinetics.pth)"}}
    assert _backbone_line(loaded).startswith("Backbones: pretrained")
    random = {"random": True, "pretrained": {"video": "r3d_18 random"}}
    assert "randomly initialised" in _backbone_line(random)


def test_meld_style_report_lines(tmp_path):
    """A fixed split (no actor lists) gives no empty 'test actors' line; MiniLM sentence
    embeddings are pretrained; other data's actors are a list, not a joined string."""
    report = _fold_report(0, seed=3)
    report["split"] = {"rule": "MELD train / dev (validation) / test"}
    report["backbones"] = backbone_status([{"meta": {}}], ["text"])
    write_fold_report(tmp_path / "meld", report)
    text = (tmp_path / "meld" / "report.md").read_text(encoding="utf-8")
    assert "actors:" not in text
    assert "Backbones: pretrained" in text and "MiniLM" in text
    write_summary(tmp_path / "meld", [report], title="MELD")
    assert "test actors" not in (tmp_path / "meld" / "report.md").read_text(encoding="utf-8")
    other = _fold_report(0, seed=3)
    other["split"] = {"train": [3, 4], "test": ["1", "2"]}
    write_summary(tmp_path / "other", [other], title="other root")
    assert "fold 0: test actors 1, 2" in (tmp_path / "other" / "report.md").read_text(encoding="utf-8")


def _with_probe(report: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 5)
    for part in report["results"].values():
        part["probe"] = classification_metrics(y, np.where(rng.random(15) < 0.2, 0, y), NAMES)
    report["linear_probe"] = {"method": "mean + std pooling", "c": 0.1, "c_rule": "C=0.1 chosen on validation",
                              "seconds": 0.5}
    return report


def test_probe_row_in_fold_and_summary_reports(tmp_path):
    reports = [_with_probe(_fold_report(f, seed=f), seed=20 + f) for f in range(3)]
    _, md_path = write_fold_report(tmp_path / "fold_0", reports[0])
    md = md_path.read_text()
    probe = reports[0]["results"]["test"]["probe"]
    assert f"| linear probe | {100 * probe['accuracy']:.1f} | {100 * probe['uar']:.1f} |" in md
    assert "C=0.1 chosen on validation" in md
    json_path, md_path = write_summary(tmp_path, reports, title="Run demo")
    summary = json.loads(json_path.read_text())["summary"]
    for part in ("test", "val"):
        accs = [r["results"][part]["probe"]["accuracy"] for r in reports]
        assert summary[part]["mean"]["linear probe / accuracy"] == pytest.approx(np.mean(accs))
        assert summary[part]["std"]["linear probe / accuracy"] == pytest.approx(np.std(accs, ddof=1))
    assert "| linear probe / UAR |" in md_path.read_text()
    # Without the probe there is no row.
    _, plain = write_fold_report(tmp_path / "plain", _fold_report(0, seed=0))
    assert "linear probe" not in plain.read_text()


def test_meld_headline_carries_the_probe():
    from mmer.evaluation.evaluate import headline

    report = _with_probe(_fold_report(0, seed=3), seed=4)
    heads = headline(report["results"])
    assert set(heads["test"]) == {"emotion", "linear probe"}
    assert heads["test"]["linear probe"]["weighted_f1"] == report["results"]["test"]["probe"]["weighted_f1"]
    assert set(headline(_fold_report(0, seed=3)["results"])["test"]) == {"emotion"}
