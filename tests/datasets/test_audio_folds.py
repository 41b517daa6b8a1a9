"""The 4-fold actor protocol of audio-only RAVDESS, also on the real audio set."""
from __future__ import annotations

from pathlib import Path

import pytest

from mmer.config import SplitConfig, load_config
from mmer.datasets.ravdess import scan_ravdess
from mmer.datasets.splits import fold_split, record_actors, split_records

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ravdess_audio.yaml"


def _check_protocol(actors: list[int]) -> None:
    cfg = load_config(CONFIG).split
    tested = []
    for fold in range(cfg.n_folds):
        split = fold_split(actors, cfg, fold)
        sides = [set(split.train), set(split.val), set(split.test)]
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        assert sorted(split.train + split.val + split.test) == sorted(actors)
        assert len(split.test) == len(split.val) == 4 and len(split.train) == len(actors) - 8
        tested += split.test
    assert sorted(tested) == sorted(actors)  # every actor is tested exactly once


def test_four_folds_over_actors_1_to_16_never_share_an_actor():
    _check_protocol(list(range(1, 17)))
    cfg = load_config(CONFIG).split
    folds = [fold_split(range(1, 17), cfg, k) for k in range(4)]
    assert [s.test for s in folds] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]
    assert [s.val for s in folds] == [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [1, 2, 3, 4]]


def test_one_fold_trains_on_every_actor_without_a_test_part():
    split = fold_split(range(1, 17), SplitConfig(n_folds=1, val_rule="next_fold", n_val_actors=4))
    assert (split.test, split.val, split.train) == ([], [1, 2, 3, 4], list(range(5, 17)))
    last = fold_split(range(1, 17), SplitConfig(n_folds=1, val_rule="last", n_val_actors=4))
    assert last.val == [13, 14, 15, 16]
    with pytest.raises(ValueError, match="n_folds=1 has only fold 0"):
        fold_split(range(1, 17), SplitConfig(n_folds=1), 1)


@pytest.mark.shared
def test_protocol_on_the_real_audio_set(shared_data):
    root = shared_data / "ravdess-speech-audio"
    cfg = load_config(CONFIG, [f"ravdess.root={root}"])
    records, skips = scan_ravdess(cfg.ravdess)
    assert len(records) == 960 and len(skips) == 0
    actors = record_actors(records)
    assert actors == list(range(1, 17))
    _check_protocol(actors)
    for fold in range(4):
        parts = split_records(records, fold_split(actors, cfg.split, fold))
        assert [len(parts[p]) for p in ("train", "val", "test")] == [480, 240, 240]
        speakers = [{r.speaker for r in parts[p]} for p in ("train", "val", "test")]
        assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
