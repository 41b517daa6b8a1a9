"""RAVDESS file names and the scan of an ``Actors`` folder into clip records.

A RAVDESS file name has seven two-digit parts ``MM-VV-EE-II-SS-RR-AA``:

====  ============  =====================================================
part  field         values
====  ============  =====================================================
MM    modality      01 full audio-video, 02 video-only, 03 audio-only
VV    vocal channel 01 speech, 02 song
EE    emotion       01 neutral, 02 calm, 03 happy, 04 sad, 05 angry,
                    06 fearful, 07 disgust, 08 surprised
II    intensity     01 normal, 02 strong (neutral has no strong)
SS    statement     01 "Kids are talking by the door",
                    02 "Dogs are sitting by the door"
RR    repetition    01, 02
AA    actor         01..24; odd actors are male, even actors female
====  ============  =====================================================

The trial id (the six parts after the modality) is shared by a trial's
full-AV, video-only and audio-only files; it is the records' ``group`` so that
splits keep the three together. A name that breaks any of these rules is
refused with the reason, never guessed at.
"""
from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmer.config import Config, RavdessConfig
from mmer.datasets.base import DatasetAdapter
from mmer.datasets.records import ClipRecord
from mmer.errors import BadInput
from mmer.io import SkipList
from mmer.synth.ravdess import make_ravdess_set

log = logging.getLogger(__name__)

# Label index i is emotion code i + 1.
RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MODALITIES = {1: "full_av", 2: "video_only", 3: "audio_only"}
VOCAL_CHANNELS = {1: "speech", 2: "song"}
INTENSITIES = {1: "normal", 2: "strong"}
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
# File extensions each modality comes in (compared in lower case).
EXTENSIONS = {1: (".mp4",), 2: (".mp4",), 3: (".wav", ".flac")}
# Field name and the inclusive range of its code, in file-name order.
FIELDS = (("modality", 1, 3), ("vocal_channel", 1, 2), ("emotion", 1, 8), ("intensity", 1, 2),
          ("statement", 1, 2), ("repetition", 1, 2), ("actor", 1, 24))
SONG_EMOTIONS = (1, 2, 3, 4, 5, 6)  # the song recordings have no disgust or surprised
ACTOR_FOLDER = re.compile(r"Actor_([0-9]{2})")
TWO_DIGITS = re.compile(r"[0-9]{2}")


class MalformedName(BadInput):
    """A file name that is not a valid RAVDESS name; the message says why."""


class RavdessRootError(BadInput):
    """The RAVDESS root folder is missing or holds no usable clip."""


@dataclass(frozen=True)
class RavdessName:
    """The parsed parts of one RAVDESS file name (codes as in the name, 1-based)."""

    modality: int
    vocal_channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int
    ext: str = ""  # lower-case extension with its dot, "" when the name had none

    @property
    def emotion_name(self) -> str:
        return RAVDESS_EMOTIONS[self.emotion - 1]

    @property
    def label(self) -> int:
        """Label index 0..7 in the order of :data:`RAVDESS_EMOTIONS`."""
        return self.emotion - 1

    @property
    def gender(self) -> str:
        return "male" if self.actor % 2 else "female"

    @property
    def modality_name(self) -> str:
        return MODALITIES[self.modality]

    @property
    def vocal_channel_name(self) -> str:
        return VOCAL_CHANNELS[self.vocal_channel]

    @property
    def statement_text(self) -> str:
        return STATEMENTS[self.statement]

    @property
    def trial_id(self) -> str:
        """The six parts after the modality, e.g. ``"01-06-01-02-01-12"``."""
        return "-".join(f"{code:02d}" for code in self.codes()[1:])

    @property
    def stem(self) -> str:
        """The full seven-part name without extension, e.g. ``"01-01-06-01-02-01-12"``."""
        return "-".join(f"{code:02d}" for code in self.codes())

    def codes(self) -> tuple[int, ...]:
        return (self.modality, self.vocal_channel, self.emotion, self.intensity,
                self.statement, self.repetition, self.actor)


def parse_name(name: str | Path) -> RavdessName:
    """Parse a RAVDESS file name (or path; only the last component is read).

    The extension may be absent (a bare clip id); when present it must suit the
    modality: ``.mp4`` for 01 and 02, ``.wav`` or ``.flac`` for 03.
    Raises :class:`MalformedName` naming the file and the broken rule.
    """
    base = Path(name).name
    stem, dot, ext = base.partition(".")
    ext = (dot + ext).lower()
    parts = stem.split("-")
    if len(parts) != len(FIELDS):
        raise MalformedName(f"{base}: expected 7 dash-separated parts MM-VV-EE-II-SS-RR-AA, "
                            f"got {len(parts)}")
    codes = {}
    for index, (part, (field, low, high)) in enumerate(zip(parts, FIELDS, strict=True), start=1):
        if not TWO_DIGITS.fullmatch(part):
            raise MalformedName(f"{base}: part {index} ({field}) {part!r} is not two digits")
        code = int(part)
        if not low <= code <= high:
            raise MalformedName(f"{base}: part {index} ({field}) {part} is out of range "
                                f"{low:02d}..{high:02d}")
        codes[field] = code
    parsed = RavdessName(**codes, ext=ext)
    _check_combination(parsed, base)
    return parsed


def _check_combination(parsed: RavdessName, base: str) -> None:
    """Rules that tie fields together (and to the extension)."""
    if parsed.emotion == 1 and parsed.intensity == 2:
        raise MalformedName(f"{base}: neutral (emotion 01) has no strong intensity (02)")
    if parsed.vocal_channel == 2 and parsed.emotion not in SONG_EMOTIONS:
        raise MalformedName(f"{base}: song (vocal channel 02) has no emotion "
                            f"{parsed.emotion:02d} ({parsed.emotion_name})")
    allowed = EXTENSIONS[parsed.modality]
    if parsed.ext and parsed.ext not in allowed:
        raise MalformedName(f"{base}: extension {parsed.ext!r} does not suit modality "
                            f"{parsed.modality:02d} ({parsed.modality_name}), "
                            f"expected {' or '.join(allowed)}")


def record_from_name(path: Path, parsed: RavdessName) -> ClipRecord:
    """The :class:`ClipRecord` of one parsed file."""
    extra = asdict(parsed)
    extra["gender"] = parsed.gender
    return ClipRecord(clip_id=parsed.stem, path=path, label=parsed.label,
                      speaker=str(parsed.actor), group=parsed.trial_id, extra=extra)


def _wanted_codes(cfg: RavdessConfig) -> tuple[int, int]:
    modality = {name: code for code, name in MODALITIES.items()}[cfg.modality]
    channel = {name: code for code, name in VOCAL_CHANNELS.items()}[cfg.vocal_channel]
    return modality, channel


def _actor_folders(root: Path, cfg: RavdessConfig, skips: SkipList) -> list[tuple[int, Path]]:
    """(actor, folder) for the wanted ``Actor_XX`` folders, sorted; strays go to `skips`."""
    wanted = None if cfg.actors is None else set(cfg.actors)
    folders = []
    for entry in sorted(root.iterdir()):
        match = ACTOR_FOLDER.fullmatch(entry.name)
        if not entry.is_dir() or match is None:
            skips.add(entry, "not an Actor_XX folder (expected layout Actor_XX/<name>.<ext>)")
            continue
        actor = int(match.group(1))
        if wanted is None or actor in wanted:
            folders.append((actor, entry))
    missing = sorted(wanted - {actor for actor, _ in folders}) if wanted is not None else []
    if missing:
        log.warning("%s: no folder for configured actor(s) %s", root, missing)
    return folders


def _scan_folder(folder: Path, actor: int, want: tuple[int, int], seen: dict[str, Path],
                 skips: SkipList, others: Counter) -> list[ClipRecord]:
    """Records of one ``Actor_XX`` folder with the wanted (modality, vocal channel)."""
    records = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            if path.is_symlink() and not path.exists():
                skips.add(path, f"broken symbolic link (points to {os.readlink(path)}, which does not exist)")
            else:
                skips.add(path, "unexpected folder inside an Actor_XX folder")
            continue
        try:
            parsed = parse_name(path)
        except MalformedName as err:
            skips.add(path, str(err))
            continue
        if (parsed.modality, parsed.vocal_channel) != want:
            others[f"{parsed.modality_name}/{parsed.vocal_channel_name}"] += 1
            continue
        if parsed.actor != actor:
            skips.add(path, f"actor {parsed.actor:02d} in the name disagrees with folder "
                            f"{folder.name}")
        elif parsed.stem in seen:
            skips.add(path, f"duplicate clip id {parsed.stem} (already have {seen[parsed.stem]})")
        else:
            seen[parsed.stem] = path
            records.append(record_from_name(path, parsed))
    return records


def scan_ravdess(cfg: RavdessConfig) -> tuple[list[ClipRecord], SkipList]:
    """Records of every clip under ``cfg.root`` (``Actor_XX/<name>.<ext>``) that matches
    the configured modality, vocal channel and actors, sorted by clip id.

    Files of other modalities or channels are left out silently; malformed names,
    stray files and names whose actor disagrees with their folder are skipped and
    listed in the returned :class:`SkipList`. Raises :class:`RavdessRootError` when
    the root is missing or nothing under it matches.
    """
    root = Path(cfg.root)
    if not root.is_dir():
        raise RavdessRootError(f"{root}: RAVDESS root folder not found (set ravdess.root to the "
                               "folder holding Actor_01, Actor_02, ...)")
    want = _wanted_codes(cfg)
    skips, others, seen = SkipList(), Counter(), {}
    records = []
    for actor, folder in _actor_folders(root, cfg, skips):
        records.extend(_scan_folder(folder, actor, want, seen, skips, others))
    if not records:
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(others.items())) or "none"
        raise RavdessRootError(f"{root}: no {cfg.modality} {cfg.vocal_channel} clips found "
                               f"(other clips found: {found}; skipped: {len(skips)})")
    records.sort(key=lambda r: r.clip_id)
    log.info("%s: %d %s %s clips from %d actors, %d skipped", root, len(records), cfg.modality,
             cfg.vocal_channel, len({r.speaker for r in records}), len(skips))
    return records, skips


class RavdessAdapter(DatasetAdapter):
    """RAVDESS: ``Actor_XX`` folders, 8 emotions, speaker-independent actor folds."""

    name = "ravdess"
    tasks = {"emotion": RAVDESS_EMOTIONS}

    def root_overrides(self, root: str) -> list[str]:
        return [f"ravdess.root={root}", "ravdess.actors=null"]

    def visual_join_key(self, name: str) -> str:
        """The trial id: the row of an audio-video clip joins the audio-only file of its trial."""
        return parse_name(name).trial_id

    def records(self, cfg: Config, *, require_media: bool = True) -> tuple[list[ClipRecord], SkipList]:
        return scan_ravdess(cfg.ravdess)

    def streams(self, cfg: Config) -> tuple[bool, bool]:
        return cfg.ravdess.modality != "audio_only", cfg.ravdess.modality != "video_only"

    def record_for_file(self, path: Path) -> ClipRecord:
        """A RAVDESS name gives the true emotion, actor and trial; any other name is unknown."""
        try:
            name = parse_name(path.name)
        except MalformedName:
            return super().record_for_file(path)
        return ClipRecord(path.stem, path, name.label, str(name.actor), name.trial_id, {"known": True})

    def speaker_groups(self, speakers: Sequence[str]) -> dict[str, list[str]]:
        """Odd actors are male, even actors female (RAVDESS README)."""
        if not speakers or not all(str(s).isdigit() for s in speakers):
            return {}
        return {"gender": ["male" if int(s) % 2 else "female" for s in speakers]}

    def write_synthetic(self, out: str | Path, **options: Any) -> list[Path]:
        """``out/Actors/Actor_XX/01-01-EE-II-SS-RR-AA.mp4`` (see :func:`make_ravdess_set`)."""
        return make_ravdess_set(out, **options)
