"""The one small interface every corpus implements: :class:`DatasetAdapter`.

An adapter answers every corpus-specific question the pipeline asks, so no code
outside :mod:`mmer.datasets` compares a dataset name:

- ``records(cfg, require_media=...)``: the clips as :class:`ClipRecord` (sorted by clip
  id) and the files its reader skipped, with reasons;
- ``tasks``: the label names of every task, emotion first (MELD adds sentiment);
- ``selection_metric``: the validation score ``best.pt`` maximises;
- ``split(cfg, records, fold)``: the train / val / test records of a fold (actor folds by
  default; a corpus with its own split overrides it) and the split's description;
- ``streams(cfg)``, ``max_seconds(cfg)``: what to decode from its media files;
- ``record_for_file(path)``: a record for any file (the label when the name gives it);
- ``write_synthetic(out, **options)``: a small set in the corpus's real formats.

Adapters are registered in :mod:`mmer.datasets` (``get_adapter(name)``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmer.config import Config
from mmer.datasets.records import ClipRecord
from mmer.datasets.splits import fold_split, record_actors, split_records, split_to_json
from mmer.io import SkipList

PARTS = ("train", "val", "test")


class DatasetAdapter:
    """Base class: actor-fold splits, emotion as the only task, UAR for model selection."""

    #: The ``dataset:`` value of a config, and the name of its config section.
    name: str = ""
    #: {task: label names}, emotion first; index = label.
    tasks: Mapping[str, Sequence[str]] = {}
    #: Validation metric (a key of :data:`mmer.metrics.scores.SCALAR_METRICS`) of ``best.pt``.
    selection_metric: str = "uar"
    #: True when the corpus has one fixed train/dev/test split (no folds to choose).
    fixed_split: bool = False
    #: True when one speaker appears in several parts of the split (MELD's characters are in
    #: train, dev and test), so per-speaker statistics would cross the parts.
    speakers_cross_parts: bool = False

    # ---------------------------------------------------------------- labels

    @property
    def label_names(self) -> list[str]:
        """The emotion labels in index order."""
        return list(self.tasks["emotion"])

    @property
    def extra_tasks(self) -> dict[str, list[str]]:
        """{task: label names} of the tasks beyond emotion (their labels are ``extra[task]``)."""
        return {t: list(n) for t, n in self.tasks.items() if t != "emotion"}

    # ---------------------------------------------------------------- data location

    def section(self, cfg: Config) -> Any:
        """The corpus's config section (``cfg.<name>``)."""
        return getattr(cfg, self.name)

    def root(self, cfg: Config) -> str:
        return str(self.section(cfg).root)

    def root_overrides(self, root: str) -> list[str]:
        """Config overrides that point the corpus at another root (all its speakers)."""
        return [f"{self.name}.root={root}"]

    def visual_join_key(self, name: str) -> str:
        """The key by which a visual-table row (its ``visual.key``, extension dropped) and a
        clip id are matched: the name itself (RAVDESS: the trial)."""
        return name

    # ---------------------------------------------------------------- records and splits

    def records(self, cfg: Config, *, require_media: bool = True) -> tuple[list[ClipRecord], SkipList]:
        raise NotImplementedError

    def survey(self, cfg: Config, *, require_media: bool = True
               ) -> tuple[list[ClipRecord], SkipList, list[str]]:
        """What ``python -m mmer.survey`` reports: the records, the skips, and notes on
        parts of the corpus that could not be read (a corpus read as a whole has none)."""
        records, skips = self.records(cfg, require_media=require_media)
        return records, skips, []

    def part_label(self, part: str) -> str:
        """The corpus's own name of a split part (MELD calls the validation part dev)."""
        return part

    def split(self, cfg: Config, records: Sequence[ClipRecord],
              fold: int) -> tuple[dict[str, list[ClipRecord]], dict[str, Any]]:
        """Speaker-independent actor folds (:mod:`mmer.datasets.splits`): ({part: records},
        description with the actors and clip ids of each part)."""
        split = fold_split(record_actors(records), cfg.split, fold)
        parts = split_records(records, split)
        return {p: list(parts.get(p, [])) for p in PARTS}, split_to_json(split, parts)

    # ---------------------------------------------------------------- decoding

    def streams(self, cfg: Config) -> tuple[bool, bool]:
        """(video, audio): whether the corpus's files of this config hold each stream."""
        return True, True

    def max_seconds(self, cfg: Config) -> float | None:
        """Clips longer than this are cut there when decoded and flagged (None: never):
        ``<section>.max_seconds``."""
        return getattr(self.section(cfg), "max_seconds", None)

    # ---------------------------------------------------------------- single files and synthetic sets

    def record_for_file(self, path: Path) -> ClipRecord:
        """A record for an arbitrary file; ``extra["known"]`` says whether its label is real."""
        return ClipRecord(path.stem, path, 0, "?", path.stem, {"known": False})

    def speaker_groups(self, speakers: Sequence[str]) -> dict[str, list[str]]:
        """Extra ways to colour speakers in plots, e.g. {"gender": [...]} (none by default)."""
        return {}

    def write_synthetic(self, out: str | Path, **options: Any) -> list[Path]:
        raise NotImplementedError(f"{self.name}: no synthetic-set writer")
