"""Synthetic clips whose picture and sound depend on the emotion.

No RAVDESS video is available offline, so the video paths are developed on
these: real H.264 + AAC mp4 containers with a cartoon face (an ellipse with
eyes, brows and a mouth) on an actor-coloured background, and a voiced tone.
The emotion sets the face hue, size, bobbing speed and amplitude, brow tilt
and mouth shape, and the tone's pitch and tremolo rate; the actor shifts the
hue, background, position and pitch a little (odd actors lower, as RAVDESS's
odd actors are male); strong intensity exaggerates the motion and tremolo.
Everything is a pure function of the clip's name and the seed.

The set writers of each corpus (:mod:`mmer.synth.ravdess`, :mod:`mmer.synth.meld`,
:mod:`mmer.datasets.crema_d`) draw every clip with these renderers.
"""
from __future__ import annotations

import colorsys
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

log = logging.getLogger(__name__)

SHIFT = 4  # cv2 drawing sub-pixel bits: smooth motion even at 64x48


class Style(NamedTuple):
    """How one emotion looks and sounds."""

    hue: float          # face hue, degrees
    scale: float        # face size relative to neutral
    bob_hz: float       # vertical bobbing frequency
    bob_amp: float      # bobbing amplitude, fraction of the frame height
    brow: float         # brow tilt: > 0 inner ends down (anger), < 0 up (sadness, fear)
    smile: float        # mouth curvature: 1 smile, -1 frown
    mouth_open: float   # 0 closed .. 1 wide open
    f0: float           # tone pitch, Hz
    tremolo_hz: float   # amplitude modulation rate


# RAVDESS emotion names in code order 01..08.
STYLES: dict[str, Style] = {
    "neutral": Style(30, 1.00, 0.5, 0.02, 0.0, 0.0, 0.2, 180, 2.0),
    "calm": Style(180, 0.95, 0.3, 0.015, -0.1, 0.3, 0.1, 160, 1.5),
    "happy": Style(55, 1.05, 1.5, 0.05, -0.1, 1.0, 0.4, 260, 6.0),
    "sad": Style(225, 0.85, 0.25, 0.02, -0.4, -0.8, 0.1, 140, 1.0),
    "angry": Style(0, 1.15, 2.5, 0.06, 0.5, -0.5, 0.6, 220, 9.0),
    "fearful": Style(270, 0.90, 3.0, 0.03, -0.3, -0.3, 0.5, 300, 12.0),
    "disgust": Style(120, 1.00, 0.8, 0.03, 0.3, -1.0, 0.2, 150, 3.0),
    "surprised": Style(320, 1.10, 1.2, 0.07, -0.5, 0.0, 1.0, 330, 5.0),
}
EMOTION_CODES = {name: code for code, name in enumerate(STYLES, start=1)}


@dataclass(frozen=True)
class Look:
    """What one actor (or MELD speaker) adds: hue shift, background, position, pitch."""

    hue_shift: float
    background: tuple[int, int, int]
    offset: tuple[float, float]  # face centre shift, fractions of width and height
    pitch: float                 # multiplies the emotion's f0

    @staticmethod
    def of(actor: int, seed: int = 0) -> Look:
        rng = np.random.default_rng([seed, actor, 7])
        grey = int(rng.integers(40, 200))
        tint = rng.integers(-25, 26, 3)
        background = tuple(int(v) for v in np.clip(grey + tint, 0, 255))
        pitch = (0.75 if actor % 2 else 1.0) * float(rng.uniform(0.95, 1.05))
        return Look(float(rng.uniform(-12, 12)), background,
                    (float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.04, 0.04))), pitch)


def _rgb(hue: float, sat: float = 0.65, val: float = 0.9) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((hue % 360) / 360.0, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * (1 << SHIFT))), int(round(y * (1 << SHIFT)))


def _draw_face(img: np.ndarray, cx: float, cy: float, a: float, b: float, style: Style,
               colour: tuple[int, int, int], mouth: float) -> None:
    """Draw the face with centre (cx, cy), half-axes (a, b) and mouth opening `mouth` in place."""
    aa = cv2.LINE_AA
    cv2.ellipse(img, _pt(cx, cy), _pt(a, b), 0, 0, 360, colour, -1, aa, SHIFT)
    dark = (30, 25, 20)
    for side in (-1, 1):
        ex, ey = cx + side * 0.38 * a, cy - 0.22 * b
        cv2.circle(img, _pt(ex, ey), int(0.13 * a * (1 << SHIFT)), (245, 245, 245), -1, aa, SHIFT)
        cv2.circle(img, _pt(ex, ey), int(0.06 * a * (1 << SHIFT)), dark, -1, aa, SHIFT)
        inner_y = ey - 0.2 * b + style.brow * 0.12 * b
        outer_y = ey - 0.2 * b - style.brow * 0.12 * b
        cv2.line(img, _pt(cx + side * 0.15 * a, inner_y), _pt(cx + side * 0.6 * a, outer_y),
                 dark, max(1, int(0.06 * a)), aa, SHIFT)
    my, width = cy + 0.45 * b, 0.42 * a
    height = max(0.5, 0.25 * b * mouth)
    cv2.ellipse(img, _pt(cx, my), _pt(width, height), 0, 0, 360, (90, 20, 30), -1, aa, SHIFT)
    if style.smile:  # a curved lip line over the mouth: lower arc smiles, upper arc frowns
        arc = (0, 180) if style.smile > 0 else (180, 360)
        curve = _pt(width * 1.1, 0.2 * b * abs(style.smile))
        cv2.ellipse(img, _pt(cx, my), curve, 0, *arc, dark, max(1, int(0.05 * a)), aa, SHIFT)


def _background(width: int, height: int, colour: tuple[int, int, int]) -> np.ndarray:
    """uint8 (H, W, 3): the actor's colour with a soft vertical gradient."""
    ramp = np.linspace(0.8, 1.15, height, dtype=np.float32)[:, None, None]
    base = np.asarray(colour, np.float32)[None, None, :] * ramp
    return np.broadcast_to(np.clip(base, 0, 255).astype(np.uint8), (height, width, 3)).copy()


def render_frames(emotion: str, look: Look, *, size: tuple[int, int], fps: float,
                  seconds: float, strong: bool = False, syllable_hz: float = 4.0,
                  seed: int = 0) -> Iterator[np.ndarray]:
    """Yield uint8 (H, W, 3) RGB frames of the cartoon face; `size` is (width, height)."""
    style = STYLES[emotion]
    width, height = size
    rng = np.random.default_rng(seed)
    back = _background(width, height, look.background)
    colour = _rgb(style.hue + look.hue_shift)
    b = 0.30 * height * style.scale
    a = 0.78 * b
    amp = style.bob_amp * (1.6 if strong else 1.0) * height
    phase = rng.uniform(0, 2 * np.pi)
    # A few noise fields, cycled: sensor-like noise without drawing 1M numbers per frame,
    # split into saturating add and subtract parts (cv2 uint8 arithmetic is ~20x numpy's).
    noise = 4 * rng.standard_normal((3, height, width, 3), dtype=np.float32)
    up = np.clip(noise, 0, 255).astype(np.uint8)
    down = np.clip(-noise, 0, 255).astype(np.uint8)
    for i in range(int(round(seconds * fps))):
        t = i / fps
        cx = width * (0.5 + look.offset[0])
        cy = height * (0.5 + look.offset[1]) + amp * np.sin(2 * np.pi * style.bob_hz * t + phase)
        talk = 0.5 + 0.5 * np.sin(2 * np.pi * syllable_hz * t + phase)
        img = back.copy()
        _draw_face(img, cx, cy, a, b, style, colour, style.mouth_open * (0.4 + 0.6 * talk))
        yield cv2.subtract(cv2.add(img, up[i % 3]), down[i % 3])


def render_tone(emotion: str, look: Look, *, sample_rate: int, seconds: float,
                strong: bool = False, syllable_hz: float = 4.0, seed: int = 0,
                channels: int = 1) -> np.ndarray:
    """float32 (channels, N) voiced tone: emotion pitch and tremolo, syllable envelope, noise."""
    style = STYLES[emotion]
    rng = np.random.default_rng([seed, 1])
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    f0 = style.f0 * look.pitch * (1 + 0.02 * np.sin(2 * np.pi * 5.0 * t))  # slight vibrato
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 5))
    depth = 0.7 if strong else 0.4
    tremolo = 1 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * style.tremolo_hz * t))
    syllables = 0.6 + 0.4 * np.abs(np.sin(np.pi * syllable_hz * t + rng.uniform(0, np.pi)))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02) if t.size else t
    wave = 0.25 * (1.3 if strong else 1.0) * voice * tremolo * syllables * fade
    wave = wave + rng.normal(0, 0.01, t.size)
    out = np.stack([wave * (1.0 - 0.1 * c) for c in range(channels)])
    return np.clip(out, -1, 1).astype(np.float32)
