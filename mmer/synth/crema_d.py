"""CREMA-D file names (the corpus design) and a synthetic set written in them.

CREMA-D (Cao et al. 2014) holds 7,442 clips of 91 actors (ids 1001..1091)
saying 12 sentences with 6 emotions. A file name has four parts separated by
underscores, ``AAAA_SSS_EEE_LL`` (e.g. ``1001_DFA_ANG_XX.flv``):

====  =========  ========================================================
part  field      values
====  =========  ========================================================
AAAA  actor      1001..1091
SSS   sentence   IEO TIE IOM IWW TAI MTI IWL ITH DFA ITS TSI WSI (see
                 :data:`SENTENCES` for the words)
EEE   emotion    ANG anger, DIS disgust, FEA fear, HAP happy, NEU neutral,
                 SAD sad
LL    level      LO low, MD medium, HI high, XX unspecified
====  =========  ========================================================

Only "It's eleven o'clock" (IEO) was recorded at three levels (LO, MD, HI) for
the five non-neutral emotions; every other sentence, and neutral IEO, is XX
(the corpus's ``SentenceFilenames.csv`` lists exactly that design: 16 IEO + 66
other clips per actor, 7,462 planned, 7,442 shipped). A name breaking these
rules is refused with the reason, never guessed at. (A non-neutral IEO clip at XX
does not occur in the corpus either, but is not refused: nothing documents it as
impossible.)

The corpus keeps each recording twice: ``<root>/VideoFlash/<stem>.flv`` (Flash
video, picture and sound, shown to the raters) and ``<root>/AudioWAV/<stem>.wav``
(16 kHz mono, for audio processing). The stem is the clip id and the records'
``group``: the two files of one recording are one trial and never fall on
different sides of a split.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from mmer.errors import BadInput
from mmer.media.write import write_audio, write_clip
from mmer.synth.render import Look, render_frames, render_tone

log = logging.getLogger(__name__)

# Label index i is the emotion at position i; EMOTION_CODES holds the file-name codes.
CREMA_D_EMOTIONS = ("angry", "disgust", "fearful", "happy", "neutral", "sad")
EMOTION_CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
# Sentence code -> words, in the order of the corpus documentation.
SENTENCES = {
    "IEO": "It's eleven o'clock", "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting", "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full", "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock", "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket", "ITS": "I think I've seen this before",
    "TSI": "The surface is slick", "WSI": "We'll stop in a couple of minutes",
}
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
LEVELLED_SENTENCE = "IEO"  # the one sentence recorded at LO/MD/HI
ACTORS = range(1001, 1092)
# Media kind -> (folder under the root, file extensions in it, compared in lower case).
MEDIA = {"video": ("VideoFlash", (".flv", ".mp4")), "audio": ("AudioWAV", (".wav",))}


class MalformedName(BadInput):
    """A file name that is not a valid CREMA-D name; the message says why."""


@dataclass(frozen=True)
class CremaDName:
    """The parsed parts of one CREMA-D file name (codes as in the name)."""

    actor: int
    sentence: str
    emotion: str
    level: str
    ext: str = ""  # lower-case extension with its dot, "" when the name had none

    @property
    def label(self) -> int:
        """Label index 0..5 in the order of :data:`CREMA_D_EMOTIONS`."""
        return EMOTION_CODES.index(self.emotion)

    @property
    def emotion_name(self) -> str:
        return CREMA_D_EMOTIONS[self.label]

    @property
    def level_name(self) -> str:
        return LEVELS[self.level]

    @property
    def sentence_text(self) -> str:
        return SENTENCES[self.sentence]

    @property
    def stem(self) -> str:
        """The name without extension, e.g. ``"1001_DFA_ANG_XX"``; the clip id."""
        return f"{self.actor}_{self.sentence}_{self.emotion}_{self.level}"


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


def parse_name(name: str | Path, *, media: str | None = None) -> CremaDName:
    """Parse a CREMA-D file name (or path; only the last component is read).

    The extension may be absent (a bare clip id). When present it must suit
    `media`'s folder (``.flv``/``.mp4`` for video, ``.wav`` for audio), or with
    `media` None be one of those. Raises :class:`MalformedName` naming the file
    and the broken rule.
    """
    base = Path(name).name
    stem, dot, ext = base.partition(".")
    ext = (dot + ext).lower()
    parts = stem.split("_")
    if len(parts) != 4:
        raise MalformedName(f"{base}: expected 4 underscore-separated parts "
                            f"ACTOR_SENTENCE_EMOTION_LEVEL, got {len(parts)}")
    actor, sentence, emotion, level = parts
    if not (len(actor) == 4 and actor.isascii() and actor.isdigit()
            and int(actor) in ACTORS):
        raise MalformedName(f"{base}: actor {actor!r} is not a number in "
                            f"{ACTORS[0]}..{ACTORS[-1]}")
    for field, code, valid in (("sentence", sentence, tuple(SENTENCES)),
                               ("emotion", emotion, EMOTION_CODES), ("level", level, tuple(LEVELS))):
        if code not in valid:
            raise MalformedName(f"{base}: unknown {field} {code!r}, expected one of "
                                f"{_choices(valid)}")
    parsed = CremaDName(int(actor), sentence, emotion, level, ext)
    _check_combination(parsed, base, media)
    return parsed


def _check_combination(parsed: CremaDName, base: str, media: str | None) -> None:
    """Rules that tie the level to the sentence and emotion, and the extension to the folder."""
    if parsed.level != "XX" and parsed.sentence != LEVELLED_SENTENCE:
        raise MalformedName(f"{base}: level {parsed.level} exists only for sentence "
                            f"{LEVELLED_SENTENCE}; {parsed.sentence} is always XX")
    if parsed.level != "XX" and parsed.emotion == "NEU":
        raise MalformedName(f"{base}: neutral (NEU) has no level {parsed.level}, only XX")
    if not parsed.ext:
        return
    if media is None:
        allowed = tuple(ext for _, exts in MEDIA.values() for ext in exts)
        if parsed.ext not in allowed:
            raise MalformedName(f"{base}: extension {parsed.ext!r} is not a CREMA-D media "
                                f"file, expected {' or '.join(allowed)}")
        return
    folder, allowed = MEDIA[media]
    if parsed.ext not in allowed:
        raise MalformedName(f"{base}: extension {parsed.ext!r} does not suit folder {folder} "
                            f"({media}), expected {' or '.join(allowed)}")

# ---------------------------------------------------------------------------------------------
# Synthetic CREMA-D: the corpus's layout and formats, a cartoon face and tone per emotion.

SAMPLE_RATE = 16000  # AudioWAV is 16 kHz mono; the synthetic FLV's AAC track uses it too
# CREMA-D emotion code -> the synthetic renderers' style name (mmer.synth.render.STYLES).
STYLE_OF = dict(zip(EMOTION_CODES, ("angry", "disgust", "fearful", "happy", "neutral", "sad"),
                    strict=True))


def _emotion_code(emotion: str) -> str:
    """A code (``"ANG"``) or name (``"angry"``) -> the code; unknown ones list the choices."""
    if emotion in EMOTION_CODES:
        return emotion
    if emotion in CREMA_D_EMOTIONS:
        return EMOTION_CODES[CREMA_D_EMOTIONS.index(emotion)]
    raise BadInput(f"unknown CREMA-D emotion {emotion!r}, expected one of "
                     f"{_choices(EMOTION_CODES)} or {_choices(CREMA_D_EMOTIONS)}")


def crema_d_names(actors: Sequence[int], emotions: Sequence[str], sentences: Sequence[str],
                  levels: Sequence[str]) -> list[CremaDName]:
    """The corpus design's names, sorted: IEO at LO/MD/HI for the non-neutral emotions,
    XX otherwise; only names whose level is in `levels` are kept."""
    codes = sorted({_emotion_code(e) for e in emotions})
    unknown = sorted(set(levels) - set(LEVELS))
    if unknown:
        raise BadInput(f"unknown CREMA-D level(s) {unknown}, expected some of "
                         f"{_choices(tuple(LEVELS))}")
    names = []
    for actor in sorted(actors):
        for sentence in sorted(sentences):
            for emotion in codes:
                design = ("LO", "MD", "HI") if (sentence == LEVELLED_SENTENCE
                                                and emotion != "NEU") else ("XX",)
                names += [CremaDName(actor, sentence, emotion, lv) for lv in design if lv in levels]
    for name in names:  # refuse what the corpus could not hold: bad actors or sentences
        parse_name(name.stem)
    return sorted(names, key=lambda n: n.stem)


def make_crema_d_set(out: str | Path, *, actors: Sequence[int] = ACTORS,
                     emotions: Sequence[str] = EMOTION_CODES,
                     sentences: Sequence[str] = tuple(SENTENCES),
                     levels: Sequence[str] = tuple(LEVELS), size: tuple[int, int] = (128, 96),
                     fps: float = 15.0, seconds: float = 2.0, seed: int = 0, video: bool = True,
                     audio: bool = True, container: Literal["flv", "mp4"] = "flv") -> list[Path]:
    """Write a synthetic CREMA-D under `out`; return the written paths in order.

    video: ``out/VideoFlash/<stem>.flv`` (H.264 yuv420p + mono AAC at 16 kHz; or ``.mp4``
    with ``container="mp4"``); audio: ``out/AudioWAV/<stem>.wav`` (16 kHz mono 16-bit).
    The emotion sets the face and the tone (see :mod:`mmer.synth.render`), HI the
    exaggerated motion, the sentence the syllable rate, the actor the look and pitch;
    everything is a pure function of the name and `seed`. `size` = (width, height).
    """
    if container not in ("flv", "mp4"):
        raise BadInput(f"container: unknown {container!r}, expected flv or mp4")
    written = []
    for name in tqdm(crema_d_names(actors, emotions, sentences, levels),
                     desc="synthetic CREMA-D", disable=None):
        look = Look.of(name.actor, seed)
        sentence = tuple(SENTENCES).index(name.sentence)
        clip_seed = [seed, name.actor, sentence, name.label, tuple(LEVELS).index(name.level)]
        kw = dict(strong=name.level == "HI", syllable_hz=3.0 + 0.25 * sentence,
                  seed=int(np.random.default_rng(clip_seed).integers(2**31)))
        style = STYLE_OF[name.emotion]
        tone = render_tone(style, look, sample_rate=SAMPLE_RATE, seconds=seconds, **kw)
        if video:
            frames = list(render_frames(style, look, size=size, fps=fps, seconds=seconds, **kw))
            path = Path(out) / "VideoFlash" / f"{name.stem}.{container}"
            written.append(write_clip(path, frames, fps, tone, SAMPLE_RATE))
        if audio:
            wav = Path(out) / "AudioWAV" / f"{name.stem}.wav"
            written.append(write_audio(wav, tone[0], SAMPLE_RATE))
    log.info("wrote %d synthetic CREMA-D files under %s", len(written), out)
    return written
