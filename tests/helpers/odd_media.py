"""Odd media for the bad-media tests: marked frames, clipped and mislabelled-rate wavs."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from mmer.media.write import write_audio
from tests.helpers.bad_inputs import _tone

ODD = os.fsdecode(b"media-\xfe")  # a folder name that is not UTF-8


FPS = 15.0


def _frames(n: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """uint8 (n, H, W, 3): frame i is flat grey 4 i, a white corner square marks the top left."""
    frames = np.repeat((4 * np.arange(n, dtype=np.uint8))[:, None, None, None], 3, axis=3)
    frames = np.broadcast_to(frames, (n, *size, 3)).copy()
    frames[:, :6, :6] = 255
    return frames


def _clipped_wav(path: Path) -> Path:
    return write_audio(path, np.clip(4 * _tone(1.0), -1, 1), 16000)


def _rate_192k_wav(path: Path) -> Path:
    """1.5 s of 16 kHz samples behind a header that says 192 kHz (0.125 s)."""
    write_audio(path, _tone(1.5), 16000)
    data = bytearray(path.read_bytes())
    data[24:32] = struct.pack("<II", 192000, 192000 * 2)
    path.write_bytes(bytes(data))
    return path


def _wav_name(i: int) -> str:
    return f"03-01-{2 + i:02d}-01-01-01-01.wav"
