"""The scan of CREMA-D's media folders into clip records, and the CREMA-D adapter.

The corpus's file names (``AAAA_SSS_EEE_LL``, its actors, sentences, emotions and levels)
are parsed by :mod:`mmer.synth.crema_d`, which also writes synthetic sets in them. The
corpus keeps each recording twice: ``<root>/VideoFlash/<stem>.flv`` (Flash video, picture
and sound, shown to the raters) and ``<root>/AudioWAV/<stem>.wav`` (16 kHz mono, for audio
processing). The stem is the clip id and the records' ``group``: the two files of one
recording are one trial and never fall on different sides of a split.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmer.config import Config, CremaDConfig
from mmer.datasets.base import DatasetAdapter
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput, ConfigError
from mmer.io import SkipList
from mmer.synth.crema_d import (
    ACTORS,
    CREMA_D_EMOTIONS,
    LEVELS,
    MEDIA,
    CremaDName,
    MalformedName,
    _choices,
    make_crema_d_set,
    parse_name,
)

log = logging.getLogger(__name__)


class CremaDRootError(BadInput):
    """The CREMA-D root or its media folder is missing or holds no usable clip."""



def record_from_name(path: Path, parsed: CremaDName, media: str) -> ClipRecord:
    """The :class:`ClipRecord` of one parsed file; both files of a recording share its group."""
    extra = asdict(parsed)
    extra["media"] = media
    return ClipRecord(clip_id=parsed.stem, path=path, label=parsed.label,
                      speaker=str(parsed.actor), group=parsed.stem, extra=extra)


def _check_config(cfg: CremaDConfig) -> None:
    if cfg.media not in MEDIA:
        raise ConfigError(f"crema_d.media: unknown media {cfg.media!r}, expected one of "
                         f"{_choices(tuple(MEDIA))}")
    unknown = sorted(set(cfg.levels or ()) - set(LEVELS))
    if unknown:
        raise ConfigError(f"crema_d.levels: unknown level(s) {unknown}, expected some of "
                         f"{_choices(tuple(LEVELS))}")
    outside = sorted(a for a in cfg.actors or () if a not in ACTORS)
    if outside:
        raise ConfigError(f"crema_d.actors: {outside} outside {ACTORS[0]}..{ACTORS[-1]}")


def _media_folder(cfg: CremaDConfig) -> Path:
    root = Path(cfg.root)
    folder, exts = MEDIA[cfg.media]
    if not root.is_dir():
        raise CremaDRootError(f"{root}: CREMA-D root folder not found (set crema_d.root to "
                              "the folder holding AudioWAV/ and VideoFlash/)")
    if not (root / folder).is_dir():
        raise CremaDRootError(f"{root / folder}: folder not found; media={cfg.media} expects "
                              f"{folder}/ACTOR_SENTENCE_EMOTION_LEVEL{'|'.join(exts)} under "
                              f"the CREMA-D root {root}")
    return root / folder


def _wanted(parsed: CremaDName, cfg: CremaDConfig) -> bool:
    return ((cfg.actors is None or parsed.actor in cfg.actors)
            and (cfg.levels is None or parsed.level in cfg.levels))


def scan_crema_d(cfg: CremaDConfig) -> tuple[list[ClipRecord], SkipList]:
    """Records of every clip in ``cfg.root``'s media folder (``VideoFlash`` or ``AudioWAV``)
    whose actor and level are configured, sorted by clip id.

    Clips of other actors or levels are left out silently; malformed names, stray
    files, folders and second files of one stem (``x.flv`` and ``x.mp4``: the first
    in sorted order is kept) are skipped and listed in the returned :class:`SkipList`.
    Raises :class:`CremaDRootError` when the root or media folder is missing or
    nothing in it matches, ``ValueError`` for an unknown media, level or actor.
    """
    _check_config(cfg)
    folder = _media_folder(cfg)
    skips, left_out, seen = SkipList(), Counter(), {}
    records = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            skips.add(path, f"unexpected folder inside {folder.name}")
            continue
        try:
            parsed = parse_name(path, media=cfg.media)
        except MalformedName as err:
            skips.add(path, str(err))
            continue
        if not _wanted(parsed, cfg):
            left_out[parsed.actor] += 1
        elif parsed.stem in seen:
            skips.add(path, f"duplicate clip id {parsed.stem} (already have {seen[parsed.stem]})")
        else:
            seen[parsed.stem] = path
            records.append(record_from_name(path, parsed, cfg.media))
    if not records:
        raise CremaDRootError(f"{folder}: no {cfg.media} clips of the configured actors and "
                              f"levels ({sum(left_out.values())} others left out, "
                              f"{len(skips)} skipped)")
    missing = sorted(set(cfg.actors or ()) - {int(r.speaker) for r in records})
    if missing:
        log.warning("%s: no clip for configured actor(s) %s", folder, missing)
    records.sort(key=lambda r: r.clip_id)
    log.info("%s: %d %s clips from %d actors, %d skipped", folder, len(records), cfg.media,
             len({r.speaker for r in records}), len(skips))
    return records, skips


class CremaDAdapter(DatasetAdapter):
    """CREMA-D: ``VideoFlash/*.flv`` (or ``AudioWAV/*.wav``), 6 emotions, actor folds."""

    name = "crema_d"
    tasks = {"emotion": CREMA_D_EMOTIONS}

    def root_overrides(self, root: str) -> list[str]:
        return [f"crema_d.root={root}", "crema_d.actors=null"]

    def records(self, cfg: Config, *, require_media: bool = True) -> tuple[list[ClipRecord], SkipList]:
        return scan_crema_d(cfg.crema_d)

    def streams(self, cfg: Config) -> tuple[bool, bool]:
        return cfg.crema_d.media == "video", True

    def record_for_file(self, path: Path) -> ClipRecord:
        """A CREMA-D name gives the true emotion and actor; any other name is unknown."""
        try:
            parsed = parse_name(path)
        except MalformedName:
            return super().record_for_file(path)
        return ClipRecord(parsed.stem, path, parsed.label, str(parsed.actor), parsed.stem, {"known": True})

    def write_synthetic(self, out: str | Path, **options: Any) -> list[Path]:
        """``out/VideoFlash/<stem>.flv`` and ``out/AudioWAV/<stem>.wav`` (see :func:`make_crema_d_set`)."""
        return make_crema_d_set(out, **options)
