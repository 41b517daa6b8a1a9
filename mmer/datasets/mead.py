"""The scan of a MEAD folder into clip records, and the MEAD adapter.

The corpus's file names (flat ``<actor>_<view>_<emotion>_level<k>_<take>.mp4`` and the
original tree) are parsed by :mod:`mmer.synth.mead`, which also writes synthetic sets in
them. The shared files are **video only** (no audio stream): the adapter decodes video alone.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmer.config import Config, MeadConfig
from mmer.datasets.base import DatasetAdapter
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput, ConfigError
from mmer.io import SkipList
from mmer.synth.mead import (
    ACTOR,
    LEVELS,
    MEAD_EMOTIONS,
    VIEWS,
    MalformedName,
    MeadName,
    make_mead_set,
    parse_name,
    parse_tree_path,
)

log = logging.getLogger(__name__)


class MeadRootError(BadInput):
    """The MEAD root is missing or holds no usable clip."""


def record_from_name(path: Path, parsed: MeadName) -> ClipRecord:
    """The :class:`ClipRecord` of one parsed clip (speaker: the actor id, group: the clip id)."""
    extra = {**asdict(parsed), "gender": parsed.gender}
    return ClipRecord(parsed.stem, path, parsed.label, parsed.actor, parsed.stem, extra)


def _check_config(cfg: MeadConfig) -> None:
    for key, values, valid in (("views", cfg.views, VIEWS), ("levels", cfg.levels, LEVELS)):
        unknown = sorted(set(values or ()) - set(valid), key=str)
        if unknown:
            raise ConfigError(f"mead.{key}: unknown value(s) {unknown}, expected some of "
                              f"{', '.join(map(str, valid))}")
    bad = [a for a in cfg.actors or () if not ACTOR.fullmatch(str(a))]
    if bad:
        raise ConfigError(f"mead.actors: {bad} are not actor ids like M030 or W009")


def _wanted(parsed: MeadName, cfg: MeadConfig) -> bool:
    return ((cfg.actors is None or parsed.actor in cfg.actors)
            and (cfg.views is None or parsed.view in cfg.views)
            and (cfg.levels is None or parsed.level in cfg.levels))


def _parse_file(path: Path, root: Path) -> MeadName:
    """A flat name directly under `root`, else the original tree layout."""
    return parse_name(path) if path.parent == root else parse_tree_path(path, root)


def scan_mead(cfg: MeadConfig) -> tuple[list[ClipRecord], SkipList]:
    """Every wanted MEAD clip under ``cfg.root`` (flat names and the original tree), sorted
    by clip id, and the files skipped with the reason (malformed, duplicate)."""
    _check_config(cfg)
    root = Path(cfg.root)
    if not root.is_dir():
        raise MeadRootError(f"{root}: MEAD root not found (set mead.root)")
    skips, seen, records, left_out = SkipList(), {}, [], 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix.lower() in (".md", ".txt", ".json", ".csv", ".tsv"):
            continue  # documentation beside the clips
        try:
            parsed = _parse_file(path, root)
        except MalformedName as err:
            skips.add(path, str(err))
            continue
        if not _wanted(parsed, cfg):
            left_out += 1
        elif parsed.stem in seen:
            skips.add(path, f"duplicate clip id {parsed.stem} (already have {seen[parsed.stem]})")
        else:
            seen[parsed.stem] = path
            records.append(record_from_name(path, parsed))
    if not records:
        raise MeadRootError(f"{root}: no MEAD clips of the configured actors, views and levels "
                            f"({left_out} others left out, {len(skips)} skipped)")
    records.sort(key=lambda r: r.clip_id)
    log.info("%s: %d MEAD clips from %d actors, %d left out, %d skipped", root, len(records),
             len({r.speaker for r in records}), left_out, len(skips))
    return records, skips


class MeadAdapter(DatasetAdapter):
    """MEAD: video-only face clips, 8 emotions, string actor ids, leave-one-actor-out folds."""

    name = "mead"
    tasks = {"emotion": MEAD_EMOTIONS}

    def root_overrides(self, root: str) -> list[str]:
        return [f"mead.root={root}", "mead.actors=null"]

    def records(self, cfg: Config, *, require_media: bool = True) -> tuple[list[ClipRecord], SkipList]:
        return scan_mead(cfg.mead)

    def streams(self, cfg: Config) -> tuple[bool, bool]:
        return True, False

    def record_for_file(self, path: Path) -> ClipRecord:
        """A MEAD name gives the true emotion and actor; any other name is unknown."""
        try:
            parsed = parse_name(path)
        except MalformedName:
            return super().record_for_file(path)
        return ClipRecord(parsed.stem, path, parsed.label, parsed.actor, parsed.stem, {"known": True})

    def speaker_groups(self, speakers: Sequence[str]) -> dict[str, list[str]]:
        """M actors are male, W actors female (MEAD's naming)."""
        if not speakers or not all(ACTOR.fullmatch(str(s)) for s in speakers):
            return {}
        return {"gender": ["male" if str(s)[0] == "M" else "female" for s in speakers]}

    def write_synthetic(self, out: str | Path, **options: Any) -> list[Path]:
        """``out/<actor>_front_<emotion>_level<k>_001.mp4`` (see :func:`make_mead_set`)."""
        return make_mead_set(out, **options)
