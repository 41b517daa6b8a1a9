"""MEAD file names (both layouts) and a synthetic set written in them.

MEAD (Wang et al., ECCV 2020) films 60 actors speaking with 8 emotions at 3 intensity
levels from 7 camera views. Two layouts are read, both under ``mead.root``:

- flat: ``<actor>_<view>_<emotion>_level<k>_<take>.mp4`` (e.g.
  ``M030_front_angry_level3_001.mp4``, the naming of the shared 24-clip set);
- original: ``<actor>/video/<view>/<emotion>/level_<k>/<take>.mp4`` (the corpus's tree).

=======  ============================================================================
part     values
=======  ============================================================================
actor    ``M`` or ``W`` and three digits (``M030`` male, ``W009`` female)
view     front, down, top, left_30, left_60, right_30, right_60
emotion  angry contempt disgusted fear happy neutral sad surprised (label order)
level    1..3; neutral exists at level 1 only
take     three digits
=======  ============================================================================

A name breaking these rules is refused with the reason. The clip id is the flat stem
(both layouts give the same id), the speaker the actor id as a string, the group the clip
id. The shared files are **video only** (no audio stream): the adapter decodes video alone.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmer.errors import BadInput
from mmer.media.write import write_clip
from mmer.synth.render import Look, render_frames

log = logging.getLogger(__name__)

MEAD_EMOTIONS = ("angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised")
VIEWS = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
LEVELS = (1, 2, 3)
EXTENSIONS = (".mp4",)
ACTOR = re.compile(r"[MW][0-9]{3}")
TAKE = re.compile(r"[0-9]{3}")
FLAT = re.compile(r"(?P<actor>[^_]+)_(?P<view>front|down|top|left_30|left_60|right_30|right_60)_"
                  r"(?P<emotion>[^_]+)_level(?P<level>[^_]+)_(?P<take>[^_]+)")


class MalformedName(BadInput):
    """A path that is not a valid MEAD clip name; the message says why."""


@dataclass(frozen=True)
class MeadName:
    """The parsed parts of one MEAD clip."""

    actor: str
    view: str
    emotion: str
    level: int
    take: str

    @property
    def label(self) -> int:
        return MEAD_EMOTIONS.index(self.emotion)

    @property
    def gender(self) -> str:
        return "male" if self.actor[0] == "M" else "female"

    @property
    def stem(self) -> str:
        """The flat name without extension, e.g. ``"M030_front_angry_level3_001"``; the clip id."""
        return f"{self.actor}_{self.view}_{self.emotion}_level{self.level}_{self.take}"


def _check_parts(base: str, actor: str, view: str, emotion: str, level: str, take: str) -> MeadName:
    if not ACTOR.fullmatch(actor):
        raise MalformedName(f"{base}: actor {actor!r} is not M or W and three digits (e.g. M030)")
    if view not in VIEWS:
        raise MalformedName(f"{base}: unknown view {view!r}, expected one of {', '.join(VIEWS)}")
    if emotion not in MEAD_EMOTIONS:
        raise MalformedName(f"{base}: unknown emotion {emotion!r}, expected one of "
                            f"{', '.join(MEAD_EMOTIONS)}")
    if not (level.isascii() and level.isdigit() and int(level) in LEVELS):
        raise MalformedName(f"{base}: level {level!r} is not one of 1, 2, 3")
    if emotion == "neutral" and int(level) != 1:
        raise MalformedName(f"{base}: neutral exists at level 1 only, got level {level}")
    if not TAKE.fullmatch(take):
        raise MalformedName(f"{base}: take {take!r} is not three digits")
    return MeadName(actor, view, emotion, int(level), take)


def _check_ext(path: Path) -> None:
    if path.suffix.lower() not in EXTENSIONS:
        raise MalformedName(f"{path.name}: extension {path.suffix!r} is not a MEAD video, "
                            f"expected {' or '.join(EXTENSIONS)}")


def parse_name(name: str | Path) -> MeadName:
    """Parse a flat MEAD name ``<actor>_<view>_<emotion>_level<k>_<take>[.mp4]``.

    Raises :class:`MalformedName` naming the file and the broken rule.
    """
    path = Path(name)
    if path.suffix:
        _check_ext(path)
    match = FLAT.fullmatch(path.stem if path.suffix else path.name)
    if match is None:
        raise MalformedName(f"{path.name}: expected <actor>_<view>_<emotion>_level<k>_<take>.mp4 "
                            f"(view one of {', '.join(VIEWS)})")
    return _check_parts(path.name, *match.group("actor", "view", "emotion", "level", "take"))


def parse_tree_path(path: str | Path, root: str | Path) -> MeadName:
    """Parse an original-layout path ``<root>/<actor>/video/<view>/<emotion>/level_<k>/<take>.mp4``."""
    path = Path(path)
    rel = path.relative_to(root).parts
    shown = "/".join(rel)
    if len(rel) != 6 or rel[1] != "video" or not rel[4].startswith("level_"):
        raise MalformedName(f"{shown}: expected <actor>/video/<view>/<emotion>/level_<k>/<take>.mp4")
    _check_ext(path)
    return _check_parts(shown, rel[0], rel[2], rel[3], rel[4][len("level_"):], path.stem)


# ---------------------------------------------------------------------------------------------
# Synthetic MEAD: the cartoon faces of mmer.synth.render, video only, in either layout.

# MEAD emotion -> the renderers' style (MEAD's contempt has no RAVDESS twin: calm's face).
STYLE_OF = {"angry": "angry", "contempt": "calm", "disgusted": "disgust", "fear": "fearful",
            "happy": "happy", "neutral": "neutral", "sad": "sad", "surprised": "surprised"}


def _path_for(out: Path, name: MeadName, layout: str) -> Path:
    if layout == "flat":
        return out / f"{name.stem}.mp4"
    if layout == "tree":
        return out / name.actor / "video" / name.view / name.emotion / f"level_{name.level}" / f"{name.take}.mp4"
    raise BadInput(f"layout: unknown {layout!r}, expected flat or tree")


def make_mead_set(out: str | Path, *, actors: Sequence[str] = ("M030", "W009", "W011"),
                  emotions: Sequence[str] = MEAD_EMOTIONS, level: int = 3,
                  size: tuple[int, int] = (64, 64), fps: float = 15.0, seconds: float = 1.5,
                  seed: int = 0, layout: str = "flat") -> list[Path]:
    """Write a synthetic MEAD under `out` (no audio stream, like the real files): one front
    take 001 per actor and emotion, at `level` (neutral at level 1). Returns the paths."""
    written = []
    for actor in sorted(actors):
        for emotion in emotions:
            lv = 1 if emotion == "neutral" else level
            name = _check_parts(actor, actor, "front", emotion, str(lv), "001")
            number = int(actor[1:]) * 2 + (actor[0] == "M")  # odd: male, as the renderer's pitch
            clip_seed = int(np.random.default_rng([seed, number, name.label]).integers(2**31))
            frames = list(render_frames(STYLE_OF[emotion], Look.of(number, seed), size=size, fps=fps,
                                        seconds=seconds, strong=lv == 3, seed=clip_seed))
            written.append(write_clip(_path_for(Path(out), name, layout), frames, fps))
    log.info("wrote %d synthetic MEAD clips under %s", len(written), out)
    return written
