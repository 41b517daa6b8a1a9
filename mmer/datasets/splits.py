"""Speaker-independent splits: consecutive actor folds, a pure function of the config.

Actors are numbers (RAVDESS ``12``, CREMA-D ``1001``) or, for a corpus whose speaker ids
are not numbers (MEAD ``"M030"``), strings; :func:`record_actors` gives ints when every
speaker id is a decimal number, so numeric ids keep their numeric order.

With 24 actors and 6 folds the folds are actors 1-4, 5-8, ..., 21-24; fold k
is the test set of run k, the validation actors are taken from the remaining
(training) actors by ``split.val_rule``, and the rest train. No actor, and no
record ``group`` (a RAVDESS trial: its AV, video-only and audio-only files), may
appear on two sides; :func:`split_records` refuses a split that would do so.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mmer.config import SplitConfig
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput

log = logging.getLogger(__name__)

SIDES = ("train", "val", "test")
# An actor: a number (RAVDESS, CREMA-D) or a string id (MEAD "M030"); one kind per corpus.
Actor = int | str


class SplitError(BadInput):
    """Actors that cannot be split as asked, or records that would leak across sides."""


@dataclass(frozen=True)
class Split:
    """Actors (numbers or string ids) on each side of one fold, each list sorted."""

    train: list[Actor]
    val: list[Actor]
    test: list[Actor]
    fold: int = 0
    n_folds: int = 1
    val_rule: str = "last"

    def side_of(self) -> dict[Actor, str]:
        """actor -> "train" | "val" | "test"; raises :class:`SplitError` on an overlap."""
        sides: dict[Actor, str] = {}
        for side in SIDES:
            for actor in getattr(self, side):
                if actor in sides:
                    raise SplitError(f"split of fold {self.fold}: actor {actor} is in both "
                                     f"{sides[actor]} and {side}")
                sides[actor] = side
        return sides


def actor_folds(actors: Iterable[Actor], n_folds: int) -> list[list[Actor]]:
    """Split the sorted actors into `n_folds` consecutive, equally sized groups.

    ``actor_folds(range(1, 25), 6) == [[1, 2, 3, 4], [5, 6, 7, 8], ..., [21, 22, 23, 24]]``.
    Raises :class:`SplitError` for duplicate actors or a count not divisible by `n_folds`.
    """
    ordered = _sorted_actors(actors)
    if len(set(ordered)) != len(ordered):
        raise SplitError(f"actor list has duplicates: {ordered}")
    if n_folds < 1 or n_folds > len(ordered):
        raise SplitError(f"n_folds={n_folds} must be between 1 and the number of actors "
                         f"({len(ordered)})")
    if len(ordered) % n_folds:
        divisors = [d for d in range(1, len(ordered) + 1) if len(ordered) % d == 0]
        raise SplitError(f"{len(ordered)} actors cannot form {n_folds} equal folds; "
                         f"choose split.n_folds from {divisors}")
    size = len(ordered) // n_folds
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def _sorted_actors(actors: Iterable[Actor]) -> list[Actor]:
    """`actors` sorted; refuses a mix of numbers and string ids (no common order)."""
    actors = list(actors)
    if len({isinstance(a, str) for a in actors}) > 1:
        raise SplitError(f"actor list mixes numbers and string ids: {actors!r:.200}")
    return sorted(actors)


def _val_actors(folds: list[list[Actor]], fold: int, rule: str, n_val: int) -> list[Actor]:
    """The `n_val` validation actors taken from the training folds by `rule`.

    With a single fold (no test actors) every actor is in the pool and "next_fold"
    takes the first actors, as if an empty test fold came before them.
    """
    if len(folds) == 1:
        folds, fold = [[], folds[0]], 0
    pool = sorted(a for k, group in enumerate(folds) if k != fold for a in group)
    if n_val < 0 or n_val >= len(pool):
        raise SplitError(f"split.n_val_actors={n_val} must be in 0..{len(pool) - 1} "
                         f"(leaving at least one of the {len(pool)} training actors)")
    if n_val == 0:
        return []
    if rule == "last":
        return pool[-n_val:]
    if rule == "first":
        return pool[:n_val]
    if rule == "next_fold":
        after = [folds[(fold + step) % len(folds)] for step in range(1, len(folds))]
        return sorted([a for group in after for a in group][:n_val])
    raise SplitError(f"split.val_rule={rule!r} is unknown; choose from 'last', 'first', "
                     "'next_fold'")


def fold_split(actors: Iterable[Actor], split_cfg: SplitConfig, fold: int | None = None) -> Split:
    """The train/val/test actors of fold `fold` (default ``split_cfg.fold``).

    Test: fold `fold` of :func:`actor_folds`. Validation: ``split_cfg.n_val_actors``
    of the remaining actors chosen by ``split_cfg.val_rule`` ("last"/"first" of
    them in sorted order, or "next_fold": the actors of the folds after the test
    fold, cyclically, cut to that many). Training: the rest. ``n_folds == 1``: no
    test actors; the validation actors are chosen from all of them the same way.
    """
    fold = split_cfg.fold if fold is None else fold
    folds = actor_folds(actors, split_cfg.n_folds)
    if len(folds) == 1:  # one model on every actor given; other actors are scored elsewhere
        if fold != 0:
            raise SplitError(f"fold {fold} does not exist; split.n_folds=1 has only fold 0 "
                             "(no test actors: every actor trains or validates)")
        val = _val_actors(folds, 0, split_cfg.val_rule, split_cfg.n_val_actors)
        train = [a for a in folds[0] if a not in val]
        return Split(train=train, val=val, test=[], fold=0, n_folds=1, val_rule=split_cfg.val_rule)
    if not 0 <= fold < len(folds):
        raise SplitError(f"fold {fold} does not exist; split.n_folds={len(folds)} gives folds "
                         f"0..{len(folds) - 1}")
    test = list(folds[fold])
    val = _val_actors(folds, fold, split_cfg.val_rule, split_cfg.n_val_actors)
    train = sorted(a for k, group in enumerate(folds) if k != fold for a in group if a not in val)
    return Split(train=train, val=val, test=test, fold=fold, n_folds=len(folds),
                 val_rule=split_cfg.val_rule)


def record_actors(records: Iterable[ClipRecord]) -> list[Actor]:
    """The sorted distinct actors of `records`: numbers when every ``speaker`` is a decimal
    number (RAVDESS ``"12"``, CREMA-D ``"1001"``), else the string ids (MEAD ``"M030"``)."""
    speakers = {str(r.speaker) for r in records}
    if all(s.isascii() and s.isdigit() for s in speakers):
        return sorted(int(s) for s in speakers)
    return sorted(speakers)


def split_records(records: Sequence[ClipRecord], split: Split) -> dict[str, list[ClipRecord]]:
    """Records by side (``{"train": [...], "val": [...], "test": [...]}``, order kept).

    Records whose speaker is on no side are left out (and counted in the log).
    Raises :class:`SplitError` if an actor is on two sides of `split` or a record
    ``group`` would land on two sides.
    """
    sides = {str(actor): side for actor, side in split.side_of().items()}
    parts: dict[str, list[ClipRecord]] = {side: [] for side in SIDES}
    group_side: dict[str, tuple[str, str]] = {}
    left_out = 0
    for record in records:
        side = sides.get(record.speaker)
        if side is None:
            left_out += 1
            continue
        first = group_side.setdefault(record.group, (side, record.clip_id))
        if first[0] != side:
            raise SplitError(f"group {record.group!r} would be on two sides: {first[1]} in "
                             f"{first[0]}, {record.clip_id} in {side}")
        parts[side].append(record)
    if left_out:
        log.info("fold %d: %d records of actors outside the split left out", split.fold, left_out)
    return parts


def split_to_json(split: Split, parts: dict[str, list[ClipRecord]] | None = None) -> dict:
    """A JSON-ready dict of the split (for ``split.json`` in a run folder).

    With `parts` (from :func:`split_records`) it also lists the clip ids of each side.
    """
    out = {"fold": split.fold, "n_folds": split.n_folds, "val_rule": split.val_rule,
           "actors": {side: list(getattr(split, side)) for side in SIDES}}
    if parts is not None:
        out["clips"] = {side: [r.clip_id for r in parts.get(side, [])] for side in SIDES}
    return out


def split_from_json(data: dict) -> Split:
    """The :class:`Split` written by :func:`split_to_json`."""
    try:
        actors = data["actors"]
        return Split(train=list(actors["train"]), val=list(actors["val"]),
                     test=list(actors["test"]), fold=int(data["fold"]),
                     n_folds=int(data["n_folds"]), val_rule=str(data["val_rule"]))
    except (KeyError, TypeError) as err:
        raise SplitError(f"split data lacks {err}: {data!r:.200}") from None
