"""Audio silence trimming and loudness normalisation of the log-mel segments."""
from __future__ import annotations

import numpy as np

from mmer.config import AudioConfig
from mmer.features.audio import audio_segments, log_mel, trim_silence


def _padded_tone(sr: int, lead: float, body: float, tail: float) -> np.ndarray:
    t = np.arange(int(body * sr)) / sr
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    return np.concatenate([np.zeros(int(lead * sr)), tone, np.zeros(int(tail * sr))]).astype(np.float32)


def test_trim_cuts_silence_but_keeps_the_margin():
    sr = 16000
    wave = _padded_tone(sr, lead=0.8, body=1.0, tail=0.5)
    trimmed = trim_silence(wave, sr, top_db=30, margin_ms=50)
    # 1 s of tone plus 50 ms each side, give or take a frame (32 ms window, 10 ms hop)
    assert abs(trimmed.size / sr - 1.1) < 0.05
    assert np.abs(trimmed[: int(0.03 * sr)]).max() == 0.0  # the margin is the silence kept
    untouched = trim_silence(np.zeros(sr, np.float32), sr, top_db=30)
    assert untouched.size == sr  # all silence: nothing to anchor a trim on, kept whole


def test_trimmed_segments_cover_only_the_speech():
    sr = 16000
    wave = _padded_tone(sr, lead=1.0, body=1.0, tail=1.0)
    plain = audio_segments(wave, sr, AudioConfig(n_segments=4))
    trimmed = audio_segments(wave, sr, AudioConfig(n_segments=4, trim_db=30))
    assert plain.shape[:3] == trimmed.shape[:3] == (4, 1, 64)
    assert trimmed.shape[-1] < plain.shape[-1] / 2  # 3 s -> about 1.1 s
    fixed = audio_segments(wave, sr, AudioConfig(n_segments=4, trim_db=30, clip_seconds=2.0))
    assert fixed.shape == (4, 1, 64, 51)  # 201 frames in 4 segments of ceil(201 / 4)


def test_fixed_normalisation_keeps_loudness_clip_normalisation_removes_it():
    sr = 16000
    loud = _padded_tone(sr, lead=0.0, body=1.0, tail=0.0)
    quiet = 0.1 * loud  # 20 dB down
    clip, fixed = AudioConfig(), AudioConfig(normalise="fixed")
    np.testing.assert_allclose(log_mel(loud, sr, clip), log_mel(quiet, sr, clip), atol=1e-4)
    diff = log_mel(loud, sr, fixed) - log_mel(quiet, sr, fixed)
    # 20 dB is one unit of the fixed map wherever neither clip sits at its 80 dB floor
    above_floor = log_mel(quiet, sr, fixed) > log_mel(quiet, sr, fixed).min() + 0.1
    np.testing.assert_allclose(diff[above_floor], 1.0, atol=1e-3)
