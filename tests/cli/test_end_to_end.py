"""Synthetic RAVDESS clips -> real extractor (R3D-18 + ResNet-18, random weights) -> train.main.

The synthetic face and tone depend on the emotion, so the cues are learnable even
through random backbones. Measured on the 2-core CPU machine (seeds 0-2, 20 epochs):
best validation accuracy 0.94-1.00 and test accuracy 0.81-1.00 over 4 emotions
(chance 0.25); the assertions leave a wide margin below that.
"""
from __future__ import annotations

import json

import pytest

import train
from mmer.cli.extract import main as extract_main
from mmer.run.folder import read_metrics
from mmer.synth.ravdess import make_ravdess_set

pytestmark = pytest.mark.slow
SMOKE = "configs/smoke.yaml"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, one_thread):
    """8 actors x 4 emotions x 2 statements (64 clips), features cached by python -m mmer.extract."""
    root = tmp_path_factory.mktemp("e2e")
    make_ravdess_set(root / "data", actors=range(1, 9), emotions=(1, 3, 5, 6), statements=(1, 2),
                     repetitions=(1,), intensities=(1,), size=(64, 48), fps=15.0, seconds=1.2,
                     sample_rate=16000)
    overrides = [
        f"ravdess.root={root / 'data' / 'Actors'}", "split.n_folds=4", "split.n_val_actors=2",
        "video.n_snippets=3", "video.snippet_len=4", "video.size=32", "audio.n_segments=3",
        f"backbone.weights_dir={root}", f"features.cache_dir={root / 'cache'}", "features.device=cpu",
        "model.d_model=32", "model.embed_dim=16", "train.epochs=20", "train.lr=0.003",
        "train.m_per_class=4", "train.warmup_epochs=1", f"train.runs_dir={root / 'runs'}",
        "train.device=cpu",
    ]
    sets = [arg for o in overrides for arg in ("--set", o)]
    assert extract_main(["--config", SMOKE, *sets]) == 0
    return root, sets


def test_training_learns_the_synthetic_emotions_and_resumes(extracted):
    root, sets = extracted
    argv = ["--config", SMOKE, *sets, "--fold", "0", "--run-name", "e2e"]
    assert train.main(argv) == 0
    out = root / "runs" / "e2e" / "fold_0"
    rows = read_metrics(out / "metrics.jsonl")
    assert len(rows) == 20
    assert rows[-1]["train_loss"] < 0.5 * rows[0]["train_loss"]
    assert max(r["val_accuracy"] for r in rows) >= 0.75      # chance: 0.25
    split = json.loads((out / "split.json").read_text())
    assert split["actors"] == {"train": [5, 6, 7, 8], "val": [3, 4], "test": [1, 2]}  # next_fold rule
    before = (out / "last.pt").read_bytes()
    assert train.main(argv) == 0                              # same command: resumes, nothing to do
    assert read_metrics(out / "metrics.jsonl") == rows and (out / "last.pt").read_bytes() == before


def test_all_folds_write_a_summary(extracted):
    root, sets = extracted
    assert train.main(["--config", SMOKE, *sets, "--set", "train.epochs=12", "--folds", "all",
                       "--run-name", "folds"]) == 0
    summary = json.loads((root / "runs" / "folds" / "summary.json").read_text())
    assert sorted(summary["folds"]) == ["0", "1", "2", "3"]
    assert summary["test_accuracy"]["mean"] >= 0.5            # chance: 0.25
    table = (root / "runs" / "folds" / "summary.md").read_text()
    assert "| mean ± std |" in table and table.count("\n") == 2 + 4 + 1 + 1  # + the linear probe's row
    assert table.splitlines()[-1].startswith("| linear probe (mean ± std) | ")


def test_missing_features_fail_with_the_extract_command(extracted, caplog):
    root, sets = extracted
    code = train.main(["--config", SMOKE, *sets, "--set", f"features.cache_dir={root / 'empty'}"])
    assert code == 2
    assert "python -m mmer.extract" in caplog.text
