"""Whisper front end: the mel filter bank, log-mel of tones and silence, the 30 s window."""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from mmer.features.whisper import N_FRAMES, SAMPLE_RATE, mel_filters, whisper_log_mel


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_mel_filters_equal_an_independent_slaney_bank():
    audio_utils = pytest.importorskip("transformers.audio_utils")
    ref = audio_utils.mel_filter_bank(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0,
                                      max_frequency=8000.0, sampling_rate=SAMPLE_RATE,
                                      norm="slaney", mel_scale="slaney")
    assert mel_filters().shape == (80, 201)
    np.testing.assert_allclose(mel_filters().numpy(), ref.T, atol=1e-6)


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0])
def test_pure_tone_peaks_in_its_mel_band(freq):
    mel = whisper_log_mel(tone(freq))
    centres = librosa.mel_frequencies(n_mels=82, fmin=0.0, fmax=SAMPLE_RATE / 2)[1:-1]
    band = int(mel[:, 10:90].mean(dim=1).argmax())
    assert abs(band - int(np.abs(centres - freq).argmin())) <= 1


def test_padding_to_3000_frames_is_the_floor():
    mel = whisper_log_mel(tone(1000.0, seconds=1.0))
    assert mel.shape == (80, N_FRAMES) and mel.dtype == torch.float32
    floor = mel.max() - 2.0  # max - 8 in log10 units is -2 after the /4
    assert torch.allclose(mel[:, 103:], floor.expand(80, N_FRAMES - 103))  # silence after 1 s
    assert (mel[:, 5:95].amax(dim=0) > floor + 1.0).all()


def test_silence_and_cut():
    assert torch.allclose(whisper_log_mel(np.zeros(16000, np.float32)), torch.tensor(-1.5))
    long = np.random.default_rng(0).standard_normal(40 * SAMPLE_RATE).astype(np.float32)
    assert whisper_log_mel(long).shape == (80, N_FRAMES)
    with pytest.raises(ValueError, match="n_frames"):
        whisper_log_mel(long, n_frames=3001)


def test_short_window_is_the_start_of_the_30s_window():
    wave = np.random.default_rng(1).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.1
    full, short = whisper_log_mel(wave), whisper_log_mel(wave, n_frames=800)
    assert short.shape == (80, 800)
    torch.testing.assert_close(short, full[:, :800], atol=1e-5, rtol=0)
