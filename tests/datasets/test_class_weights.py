"""MELD class weights in label order, also on the real training CSV."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmer.config import MeldConfig
from mmer.datasets import get_adapter
from mmer.datasets.labels import class_weights, task_labels
from mmer.datasets.meld import MELD_EMOTIONS, MELD_SENTIMENTS, meld_records
from mmer.datasets.records import ClipRecord

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


MELD_TASKS = get_adapter("meld").tasks


def _records(emotions: list[int], sentiments: list[int]) -> list[ClipRecord]:
    return [ClipRecord(f"train/dia{i}_utt0", None, e, "Joey", f"train/dia{i}", {"sentiment": s})
            for i, (e, s) in enumerate(zip(emotions, sentiments, strict=True))]


def test_class_weights_follow_the_label_index() -> None:
    # counts per emotion index 0..6: 1, 2, 4, 8, 16, 4, 2; sentiment: 30, 5, 2
    emotions = [i for i, n in enumerate([1, 2, 4, 8, 16, 4, 2]) for _ in range(n)]
    sentiments = [0] * 30 + [1] * 5 + [2] * 2
    w = class_weights(_records(emotions, sentiments), MELD_TASKS)
    n = len(emotions)
    expected = [n / (7 * c) for c in (1, 2, 4, 8, 16, 4, 2)]
    torch.testing.assert_close(w["emotion"], torch.tensor(expected))
    torch.testing.assert_close(w["sentiment"], torch.tensor([37 / 90, 37 / 15, 37 / 6]))
    with pytest.raises(ValueError, match="emotion, sentiment"):
        task_labels([], "valence", MELD_TASKS)


def test_real_train_weights_smallest_for_neutral() -> None:
    csv_dir = SHARED / "data" / "meld"
    if not (csv_dir / "train_sent_emo.csv").is_file():
        pytest.skip(f"real MELD CSVs not found in {csv_dir}")
    records, _ = meld_records(MeldConfig(root=str(csv_dir)), "train", require_clips=False)
    w = class_weights(records, MELD_TASKS)
    emotion, sentiment = w["emotion"].tolist(), w["sentiment"].tolist()
    # neutral is by far the most frequent emotion and sentiment of the training set,
    # fear and disgust the rarest emotions: the weights must sit at those indices.
    assert min(emotion) == emotion[MELD_EMOTIONS.index("neutral")] < 0.4
    assert min(sentiment) == sentiment[MELD_SENTIMENTS.index("neutral")]
    assert {MELD_EMOTIONS[i] for i in torch.tensor(emotion).argsort()[-2:]} == {"fear", "disgust"}
    assert emotion[MELD_EMOTIONS.index("joy")] < emotion[MELD_EMOTIONS.index("anger")]
