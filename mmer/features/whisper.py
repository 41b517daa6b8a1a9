"""Whisper's log-mel front end (the input of :class:`mmer.nets.whisper.WhisperEncoder`).

16 kHz audio, periodic Hann window of 400 samples (25 ms), hop 160 (10 ms), centred
frames (the signal reflected at its ends), power spectrum, 80 Slaney-normalised mel bands
on the Slaney mel scale (``librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)``; this
equals Whisper's shipped ``mel_filters.npz`` "mel_80" exactly: max abs difference 0.0
against openai-whisper 20250625), log10 with a 1e-10 clamp, floored at 8 below the
window's maximum, then ``(x + 4) / 4``.

The grid is Whisper's 30 s window: ``n_frames=3000`` frames = 480000 samples, the wave
zero-padded or cut to fit. For a clip of at most 30 s this is exactly
``whisper.pad_or_trim`` then ``log_mel_spectrogram`` (n_frames + 1 frames, the last
dropped); for longer audio the last frame reads the 40 samples after the cut rather than
a reflection, as in ``whisper.transcribe``, which slices a spectrogram of the whole file.

A shorter window (``n_frames < 3000``, e.g. 800 = 8 s) is the first `n_frames` columns of
that 30 s spectrogram, frame for frame, with one difference: the max - 8 floor is taken
over the shorter window itself. For a clip that fits inside the window that changes
nothing (the padding is silence, far below the peak).
"""
from __future__ import annotations

import functools
import math

import librosa
import numpy as np
import torch

from mmer.config import AudioConfig
from mmer.errors import BadInput
from mmer.features.audio import trim_silence

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
N_FRAMES = 3000  # 30 s


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int = N_MELS) -> torch.Tensor:
    """(n_mels, N_FFT // 2 + 1) float32 Slaney mel filter bank at 16 kHz (read-only copy)."""
    bank = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)
    return torch.from_numpy(bank.astype(np.float32))


def resample_to_16k(wave: np.ndarray, sr: int) -> np.ndarray:
    """(N,) float audio at `sr` -> (M,) float32 at 16 kHz (soxr high quality)."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise BadInput(f"expected a mono wave of shape (N,), got {wave.shape}")
    if sr == SAMPLE_RATE:
        return wave
    return librosa.resample(wave, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")


def fit_to_frames(wave: np.ndarray, n_frames: int) -> np.ndarray:
    """Zero-pad or cut (N,) audio to the n_frames grid plus the half window that the last
    frame reads ((n_frames * HOP_LENGTH + N_FFT // 2,) float32)."""
    n = n_frames * HOP_LENGTH + N_FFT // 2
    out = np.zeros(n, dtype=np.float32)
    m = min(n, len(wave))
    out[:m] = wave[:m]
    return out


def whisper_log_mel(wave: np.ndarray, n_frames: int = N_FRAMES) -> torch.Tensor:
    """(N,) float32 mono 16 kHz audio -> (80, n_frames) float32 Whisper log-mel."""
    if n_frames < 1 or n_frames > N_FRAMES:
        raise BadInput(f"n_frames must be in 1..{N_FRAMES}, got {n_frames}")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise BadInput(f"expected a mono wave of shape (N,), got {wave.shape}")
    x = torch.from_numpy(fit_to_frames(wave, n_frames))
    spec = torch.stft(x, N_FFT, HOP_LENGTH, window=torch.hann_window(N_FFT),
                      center=True, pad_mode="reflect", return_complex=True)
    power = spec[:, :n_frames].abs() ** 2  # (201, n_frames)
    mel = mel_filters() @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def valid_states(n_samples: int, n_frames: int) -> int:
    """Encoder states (2 frames = 320 samples each) that cover `n_samples` of audio at the
    start of an `n_frames` window: ceil(n_samples / 320), at least 1, at most ceil(n_frames / 2)."""
    return max(1, min(math.ceil(n_samples / (2 * HOP_LENGTH)), math.ceil(n_frames / 2)))


def whisper_window(wave: np.ndarray, sr: int, cfg: AudioConfig, n_frames: int) -> tuple[torch.Tensor, int]:
    """The input of the ``whisper_tiny`` audio backbone for one clip.

    `wave` (N,) mono at `sr` is resampled to 16 kHz and, with ``cfg.trim_db``, cut of its
    leading and trailing silence (:func:`mmer.features.audio.trim_silence`); it then starts an
    `n_frames` window (zero-padded or cut; ``cfg.clip_seconds`` does not apply here).
    Returns the (80, n_frames) log-mel and how many encoder states cover the clip's audio.
    """
    wave = resample_to_16k(wave, sr)
    if cfg.trim_db is not None:
        wave = trim_silence(wave, SAMPLE_RATE, cfg.trim_db, cfg.trim_margin_ms)
    return whisper_log_mel(wave, n_frames), valid_states(len(wave), n_frames)


def speed_views(wave: np.ndarray, sr: int, n_views: int, max_change: float, seed: int) -> list[np.ndarray]:
    """`n_views` copies of (N,) `wave` at `sr` played faster or slower, tempo and pitch
    together: factor f drawn uniformly in [1 - max_change, 1 + max_change] from `seed`, the
    copy (about N / f,) float32 at `sr` (soxr high quality)."""
    factors = np.random.default_rng(seed).uniform(1.0 - max_change, 1.0 + max_change, n_views)
    wave = np.asarray(wave, dtype=np.float32)
    return [librosa.resample(wave, orig_sr=sr * float(f), target_sr=sr, res_type="soxr_hq") for f in factors]


def segment_pool(states: torch.Tensor, n_valid: int, n_segments: int, pool: str) -> torch.Tensor:
    """(T, C) encoder states -> (S, C) means (``pool="mean"``) or (S, 2C) means and stds
    (``"mean_std"``) over S = `n_segments` equal parts of the first `n_valid` states (the
    ones covering audio). Segment s covers states floor(s * n / S) .. floor((s + 1) * n / S),
    widened to one state when a clip has fewer states than segments (std 0 then)."""
    if pool not in ("mean", "mean_std"):
        raise BadInput(f"unknown audio pooling {pool!r}; choices: mean, mean_std")
    n = max(1, min(n_valid, states.shape[0]))
    out = []
    for s in range(n_segments):
        a = min(s * n // n_segments, n - 1)
        part = states[a:max(a + 1, (s + 1) * n // n_segments)]
        stats = [part.mean(dim=0)]
        if pool == "mean_std":
            stats.append(part.std(dim=0, correction=0))
        out.append(torch.cat(stats))
    return torch.stack(out)
