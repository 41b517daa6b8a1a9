"""A tiny synthetic MELD root (CSVs only) for the text training tests."""
from __future__ import annotations

from pathlib import Path

from mmer.synth.meld import meld_rows, write_meld_csv


def _meld_root(root: Path, n_train: int, n_dev: int, *, test: bool = False) -> Path:
    write_meld_csv(root / "train_sent_emo.csv", meld_rows(n_train, seed=1))
    write_meld_csv(root / "dev_sent_emo.csv", meld_rows(n_dev, seed=2))
    if test:
        write_meld_csv(root / "test_sent_emo.csv", meld_rows(n_dev, seed=3))
    return root
