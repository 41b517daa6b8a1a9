"""The data survey command (python -m mmer.survey): counts, folds and skips, on tiny trees of empty files."""
from __future__ import annotations

from pathlib import Path

import pytest

from mmer.cli.survey import main
from mmer.io import SkipList

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _ravdess_tree(root: Path) -> None:
    for actor in range(1, 5):
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion in (3, 5):
            (folder / f"03-01-{emotion:02d}-01-01-01-{actor:02d}.wav").write_bytes(b"")
    (root / "Actor_04" / "03-01-09-01-01-01-04.wav").write_bytes(b"")


def test_ravdess_counts_folds_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _ravdess_tree(tmp_path / "Actors")
    skipped = tmp_path / "skipped.tsv"
    code = main(["--config", str(CONFIGS / "smoke.yaml"), "--set", f"ravdess.root={tmp_path / 'Actors'}",
                 "--set", "ravdess.modality=audio_only", "--set", "split.n_folds=4",
                 "--set", "split.n_val_actors=1", "--skipped", str(skipped)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ravdess: 8 records\n")
    assert "  happy             4\n" in out and "  angry             4\n" in out
    assert "fold 3: train 4 clips [2, 3], val 2 clips [1], test 2 clips [4]" in out
    assert "skipped: 1\n" in out and "out of range 01..08" in out
    assert [Path(s.item).name for s in SkipList.read(skipped)] == ["03-01-09-01-01-01-04.wav"]


def test_meld_text_only_and_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
    row = '1,Hi!,Joey,joy,positive,0,0,1,1,"00:00:01,000","00:00:02,000"'
    (tmp_path / "dev_sent_emo.csv").write_text(f"{header}\n{row}\n", encoding="utf-8")
    code = main(["--config", str(CONFIGS / "meld.yaml"), "--set", f"meld.root={tmp_path}", "--text-only"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 2  # no train CSV: the report is printed, then the error
    assert "train_sent_emo.csv" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert out.startswith("meld: 1 records\n")
    assert "train: not used" in out and "dev: rows per emotion:\n  joy               1\n" in out
    assert main(["--config", str(CONFIGS / "smoke.yaml"), "--set", f"ravdess.root={tmp_path / 'no'}"]) == 2
    assert "RAVDESS root folder not found" in capsys.readouterr().err
