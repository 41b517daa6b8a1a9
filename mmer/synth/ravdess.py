"""Synthetic RAVDESS-format sets: ``Actors/Actor_XX/01-01-EE-II-SS-RR-AA.mp4`` (+ twins).

Real H.264 + AAC mp4 containers of the cartoon faces and voiced tones of
:mod:`mmer.synth.render`, one per trial, a pure function of the trial and the seed.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mmer.media.write import write_audio, write_clip
from mmer.synth.render import EMOTION_CODES, Look, render_frames, render_tone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    """One RAVDESS speech trial (the name parts after modality and vocal channel)."""

    emotion: int     # 1..8
    intensity: int   # 1 normal, 2 strong
    statement: int   # 1, 2
    repetition: int  # 1, 2
    actor: int       # 1..24

    def name(self, modality: int, suffix: str) -> str:
        parts = (modality, 1, self.emotion, self.intensity, self.statement, self.repetition,
                 self.actor)
        return "-".join(f"{p:02d}" for p in parts) + suffix


def ravdess_trials(actors: Sequence[int], emotions: Sequence[int], statements: Sequence[int],
                   repetitions: Sequence[int], intensities: Sequence[int]) -> list[Trial]:
    """Sorted trials; neutral (01) has no strong intensity, as in RAVDESS."""
    return [Trial(e, i, s, r, a) for a in sorted(actors) for e in sorted(emotions)
            for i in sorted(intensities) if not (e == 1 and i == 2)
            for s in sorted(statements) for r in sorted(repetitions)]


def make_ravdess_set(out: str | Path, *, actors: Sequence[int] = range(1, 25),
                     emotions: Sequence[int] = range(1, 9), statements: Sequence[int] = (1, 2),
                     repetitions: Sequence[int] = (1, 2), intensities: Sequence[int] = (1, 2),
                     size: tuple[int, int] = (128, 96), fps: float = 15.0,
                     seconds: float = 2.0, sample_rate: int = 48000, seed: int = 0,
                     audio_twins: bool = False, video_twins: bool = False) -> list[Path]:
    """Write ``out/Actors/Actor_XX/01-01-EE-II-SS-RR-AA.mp4`` for every trial; return the paths.

    H.264 (yuv420p) + stereo AAC at `sample_rate`, `size` = (width, height).
    audio_twins: also ``03-...wav`` (mono 16-bit); video_twins: also ``02-...mp4`` (no audio).
    """
    names = {code: name for name, code in EMOTION_CODES.items()}
    written = []
    trials = ravdess_trials(actors, emotions, statements, repetitions, intensities)
    for trial in tqdm(trials, desc="synthetic RAVDESS", disable=None):
        folder = Path(out) / "Actors" / f"Actor_{trial.actor:02d}"
        look = Look.of(trial.actor, seed)
        clip_seed = [seed, trial.emotion, trial.intensity, trial.statement, trial.repetition,
                     trial.actor]
        kw = dict(strong=trial.intensity == 2, syllable_hz=3.0 + trial.statement,
                  seed=int(np.random.default_rng(clip_seed).integers(2**31)))
        emotion = names[trial.emotion]
        tone = render_tone(emotion, look, sample_rate=sample_rate, seconds=seconds,
                           channels=2, **kw)
        frames = render_frames(emotion, look, size=size, fps=fps, seconds=seconds, **kw)
        written.append(write_clip(folder / trial.name(1, ".mp4"), frames, fps, tone, sample_rate))
        if video_twins:
            frames = render_frames(emotion, look, size=size, fps=fps, seconds=seconds, **kw)
            written.append(write_clip(folder / trial.name(2, ".mp4"), frames, fps))
        if audio_twins:
            written.append(write_audio(folder / trial.name(3, ".wav"), tone[0], sample_rate))
    log.info("wrote %d synthetic RAVDESS files under %s", len(written), out)
    return written
