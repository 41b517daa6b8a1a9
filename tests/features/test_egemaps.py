"""The openSMILE eGeMAPS audio descriptors (audio.functionals: egemaps)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmer.features.audio import EGEMAPS_DIM, Egemaps


def _voice(f0: float, sr: int = 16000, seconds: float = 1.5) -> np.ndarray:
    """A vowel-like harmonic tone at `f0` Hz with a slow loudness swell."""
    t = np.arange(int(sr * seconds)) / sr
    wave = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    return (0.2 * wave * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def test_egemaps_pitch_follows_the_fundamental():
    egemaps = Egemaps()
    low, high = egemaps(_voice(110.0), 16000), egemaps(_voice(220.0), 16000)
    assert low.shape == (EGEMAPS_DIM,) and torch.isfinite(low).all()
    # Feature 0 is the mean F0 in semitones from 27.5 Hz: 110 Hz is 24, an octave up is 36.
    assert abs(float(low[0]) - 24.0) < 1.0
    assert abs(float(high[0] - low[0]) - 12.0) < 1.0


def test_egemaps_of_a_clip_too_short_is_refused():
    with pytest.raises(ValueError, match="too short"):
        Egemaps()(np.zeros(100, np.float32), 16000)
