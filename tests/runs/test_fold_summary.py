"""The fold summary of a run folder: mean and sample std over folds, summary.md and summary.json."""
from __future__ import annotations

import pytest

from mmer.run.folder import summarise_folds, write_summary

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one intra-op thread


def test_fold_summary_mean_and_sample_std(tmp_path):
    results = {0: {"val_uar": 0.5, "test_accuracy": 0.6}, 1: {"val_uar": 0.7, "test_accuracy": 0.8}}
    summary = summarise_folds(results, ["val_uar", "test_accuracy"])
    assert summary["val_uar"]["mean"] == pytest.approx(0.6)
    assert summary["val_uar"]["std"] == pytest.approx(0.1414213, rel=1e-5)
    text = write_summary(tmp_path, summary, ["val_uar", "test_accuracy"])
    assert "| mean ± std | 0.6000 ± 0.1414 | 0.7000 ± 0.1414 |" in text
    assert (tmp_path / "summary.md").read_text() == text and (tmp_path / "summary.json").is_file()
