"""Odd but usable audio: the notes :func:`mmer.media.decode.decode_clip` returns.

Extraction records them in the entry's ``meta["flags"]`` and the cache's flagged list;
predict prints them with its answer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# Peak amplitude below which an audio track counts as silent (16-bit quantisation step: 3e-5).
SILENT_PEAK = 1e-4
# |sample| at or above this is at full scale (int16 tops out at 1 - 2**-15).
FULL_SCALE = 0.999
# A track with at least this fraction of its samples at full scale was clipped.
CLIPPED_FRACTION = 1e-3
# Speech recordings stop at 96 kHz; a higher header rate is usually a wrong header.
MAX_NATIVE_RATE = 96000
# Audio shorter than this holds no utterance (and its log-mel segments are mostly padding).
MIN_AUDIO_SECONDS = 0.5


def audio_notes(path: Path, wave: np.ndarray, native: np.ndarray, native_rate: int) -> list[str]:
    """What is odd but usable about a decoded audio track: `wave` float32 (N,) at the
    target rate, `native` (M,) at the file's `native_rate`."""
    notes = []
    if wave.size and float(np.abs(wave).max()) < SILENT_PEAK:
        notes.append("silent audio track")
    full = int(np.count_nonzero(np.abs(native) >= FULL_SCALE))
    if full >= CLIPPED_FRACTION * native.size and full > 1:
        notes.append(f"clipped: {full} of {native.size} samples ({full / native.size:.1%}) at full scale")
    if native_rate > MAX_NATIVE_RATE:
        notes.append(f"audio sample rate {native_rate} Hz in the header (above {MAX_NATIVE_RATE})")
    if native_rate and native.size / native_rate < MIN_AUDIO_SECONDS:
        notes.append(f"only {native.size / native_rate:.3g} s of audio (under {MIN_AUDIO_SECONDS} s)")
    claimed = _wav_data_claim(path)
    if claimed is not None and claimed[0] > claimed[1]:
        notes.append(f"wav header claims {claimed[0]} data bytes, the file holds {claimed[1]}")
    return notes


def _wav_data_claim(path: Path) -> tuple[int, int] | None:
    """(bytes the RIFF ``data`` chunk header claims, bytes the file holds after it), for a
    wav file; None for anything else. FFmpeg silently decodes what is there."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
            size = fh.seek(0, 2)
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(head):
        chunk, length = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
        if chunk == b"data":
            return length, size - pos - 8
        pos += 8 + length + (length & 1)
    return None
