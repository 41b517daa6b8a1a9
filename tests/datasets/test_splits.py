"""Speaker-independent folds: consecutive actors, validation rules, no leaks, twins together."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmer.config import RavdessConfig, SplitConfig
from mmer.datasets.ravdess import scan_ravdess
from mmer.datasets.records import ClipRecord
from mmer.datasets.splits import (
    Split,
    SplitError,
    actor_folds,
    fold_split,
    record_actors,
    split_from_json,
    split_records,
    split_to_json,
)

ACTORS = list(range(1, 25))


def test_folds_are_consecutive_groups() -> None:
    assert actor_folds(ACTORS, 6) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12],
                                      [13, 14, 15, 16], [17, 18, 19, 20], [21, 22, 23, 24]]
    assert actor_folds(reversed(range(1, 17)), 4) == [[1, 2, 3, 4], [5, 6, 7, 8],
                                                      [9, 10, 11, 12], [13, 14, 15, 16]]
    assert actor_folds([7, 3], 2) == [[3], [7]]


@pytest.mark.parametrize("actors, n_folds, message", [
    (range(1, 17), 6, r"16 actors cannot form 6 equal folds; choose split.n_folds from \[1, 2, 4, 8, 16\]"),
    ([1, 2, 2, 3], 2, "duplicates"),
    (range(1, 5), 0, "n_folds=0 must be between 1"),
    (range(1, 5), 5, "n_folds=5 must be between 1"),
])
def test_folds_refuse_bad_counts(actors, n_folds: int, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        actor_folds(actors, n_folds)


@pytest.mark.parametrize("rule, fold, val", [
    ("next_fold", 0, [5, 6, 7, 8]),
    ("next_fold", 5, [1, 2, 3, 4]),     # cyclic: the fold after the last is the first
    ("last", 5, [17, 18, 19, 20]),
    ("last", 2, [21, 22, 23, 24]),
    ("first", 0, [5, 6, 7, 8]),
    ("first", 3, [1, 2, 3, 4]),
])
def test_val_rules(rule: str, fold: int, val: list[int]) -> None:
    split = fold_split(ACTORS, SplitConfig(n_folds=6, val_rule=rule, n_val_actors=4), fold)
    assert split.test == ACTORS[4 * fold:4 * fold + 4]
    assert split.val == val
    assert sorted(split.train + split.val + split.test) == ACTORS
    assert len(split.train) == 16


def test_next_fold_truncates_and_extends() -> None:
    short = fold_split(ACTORS, SplitConfig(n_folds=6, val_rule="next_fold", n_val_actors=2), 5)
    assert short.val == [1, 2]
    long = fold_split(ACTORS, SplitConfig(n_folds=6, val_rule="next_fold", n_val_actors=6), 4)
    assert long.val == [1, 2, 21, 22, 23, 24]  # fold 5 whole, then the start of fold 0


def test_zero_val_actors_and_default_fold() -> None:
    split = fold_split(ACTORS, SplitConfig(n_folds=6, n_val_actors=0, fold=2))
    assert (split.val, split.test, split.fold) == ([], [9, 10, 11, 12], 2)
    assert len(split.train) == 20


@pytest.mark.parametrize("cfg, fold, message", [
    (SplitConfig(n_folds=6), 6, "fold 6 does not exist; split.n_folds=6 gives folds 0..5"),
    (SplitConfig(n_folds=6), -1, "fold -1 does not exist"),
    (SplitConfig(n_folds=6, n_val_actors=20), 0, r"n_val_actors=20 must be in 0\.\.19"),
    (SplitConfig(n_folds=1, n_val_actors=0), 1, "n_folds=1 has only fold 0"),
])
def test_fold_split_refusals(cfg: SplitConfig, fold: int, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        fold_split(ACTORS, cfg, fold)


def test_every_fold_is_disjoint_and_deterministic() -> None:
    cfg = SplitConfig()
    tests = []
    for fold in range(cfg.n_folds):
        split = fold_split(ACTORS, cfg, fold)
        assert split == fold_split(list(reversed(ACTORS)), cfg, fold)
        sides = [set(split.train), set(split.val), set(split.test)]
        assert sum(map(len, sides)) == len(set().union(*sides)) == 24
        tests.extend(split.test)
    assert sorted(tests) == ACTORS  # each actor is tested exactly once across folds


def _record(actor: int, trial: str, modality: str = "01") -> ClipRecord:
    return ClipRecord(f"{modality}-{trial}-{actor:02d}", None, 0, str(actor), f"{trial}-{actor:02d}")


def test_split_records_refuses_group_on_two_sides() -> None:
    split = Split(train=[1], val=[], test=[2])
    leak = [_record(1, "01-03-01-01-01"), ClipRecord("x", None, 0, "2", "01-03-01-01-01-01")]
    with pytest.raises(SplitError, match="group '01-03-01-01-01-01' would be on two sides"):
        split_records(leak, split)


def test_split_records_refuses_actor_on_two_sides() -> None:
    with pytest.raises(SplitError, match="actor 3 is in both train and test"):
        split_records([_record(3, "01-01-01-01-01")], Split(train=[1, 3], val=[], test=[3]))


def test_split_records_leaves_out_unknown_actors() -> None:
    records = [_record(a, "01-01-01-01-01") for a in (1, 2, 9)]
    parts = split_records(records, Split(train=[1], val=[2], test=[3]))
    assert {side: [r.speaker for r in rs] for side, rs in parts.items()} == {
        "train": ["1"], "val": ["2"], "test": []}


def _touch_twins(root: Path, actors: range) -> None:
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir()
        for emotion in (1, 3, 5):
            trial = f"01-{emotion:02d}-01-01-01-{actor:02d}"
            for name in (f"01-{trial}.mp4", f"02-{trial}.mp4", f"03-{trial}.wav"):
                (folder / name).write_bytes(b"")


def test_twins_fall_on_the_same_side(tmp_path: Path) -> None:
    _touch_twins(tmp_path, range(1, 13))
    cfg = SplitConfig(n_folds=3, n_val_actors=2)
    side_of_trial: dict[str, set[str]] = {}
    for modality in ("full_av", "video_only", "audio_only"):
        records, skips = scan_ravdess(RavdessConfig(root=str(tmp_path), modality=modality))
        assert len(records) == 36 and not skips
        split = fold_split(record_actors(records), cfg, 1)
        for side, part in split_records(records, split).items():
            for record in part:
                side_of_trial.setdefault(record.group, set()).add(side)
    assert len(side_of_trial) == 36
    assert all(len(sides) == 1 for sides in side_of_trial.values())
    # Mixing all three modalities in one list is accepted too: shared groups stay together.
    mixed = [r for m in ("full_av", "video_only", "audio_only")
             for r in scan_ravdess(RavdessConfig(root=str(tmp_path), modality=m))[0]]
    parts = split_records(mixed, fold_split(range(1, 13), cfg, 0))
    assert sum(map(len, parts.values())) == 108


def test_split_json_round_trip() -> None:
    split = fold_split(ACTORS, SplitConfig(), 3)
    records = [_record(a, "01-01-01-01-01") for a in ACTORS]
    data = split_to_json(split, split_records(records, split))
    data = json.loads(json.dumps(data))
    assert data["actors"]["test"] == [13, 14, 15, 16]
    assert data["clips"]["val"] == [f"01-01-01-01-01-01-{a:02d}" for a in split.val]
    assert split_from_json(data) == split
    with pytest.raises(SplitError, match="lacks"):
        split_from_json({"fold": 0})
