"""Log-mel spectrograms, normalised per clip and cut into segments aligned with the video snippets.

Frames are `cfg.win_ms` (32 ms) Hamming windows every `cfg.hop_ms` (10 ms),
centred (frame t is centred on sample t * hop, the signal zero-padded at both
ends). The FFT size is the window length rounded up to a power of two (512 at
16 kHz), the window zero-padded to it. Mel power is taken to decibels (floor
1e-10, at most 80 dB below the clip's peak) and standardised over the whole
clip; the standard deviation is floored, so a silent clip gives zeros, never NaN.
With ``audio.normalise="fixed"`` every clip gets the same affine map of dB instead.
"""
from __future__ import annotations

import math
import warnings

import librosa
import numpy as np
import torch

from mmer.config import AudioConfig
from mmer.errors import BadInput

STD_FLOOR = 1e-3  # dB; a clip flatter than this is treated as constant (silence)
TOP_DB = 80.0
# audio.normalise="fixed": (dB - centre) / scale for every clip. Trimmed RAVDESS speech has
# clip mean levels from -71 to -35 dB (mean -53) and within-clip std ~17 dB, so this keeps
# values near unit scale while keeping how loud a clip is (a cue to arousal).
FIXED_DB_CENTRE = -50.0
FIXED_DB_SCALE = 20.0


def frame_params(sr: int, cfg: AudioConfig) -> tuple[int, int, int]:
    """(win_length, hop_length, n_fft) in samples at `sr`."""
    win = int(round(sr * cfg.win_ms / 1000.0))
    hop = int(round(sr * cfg.hop_ms / 1000.0))
    if win < 1 or hop < 1:
        raise BadInput(f"audio window {cfg.win_ms} ms / hop {cfg.hop_ms} ms is under one "
                         f"sample at {sr} Hz")
    return win, hop, 1 << (win - 1).bit_length()


def _check_wave(wave: np.ndarray, sr: int) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise BadInput(f"audio must be mono (N,), got shape {wave.shape}")
    if sr <= 0:
        raise BadInput(f"sample rate must be positive, got {sr}")
    if not np.all(np.isfinite(wave)):
        raise BadInput("audio contains NaN or infinite samples")
    return wave


def log_mel(wave: np.ndarray, sr: int, cfg: AudioConfig) -> np.ndarray:
    """float32 (M, T) log-mel of mono `wave` (N,) at `sr` Hz, standardised per clip
    (or by the fixed dB map, per ``cfg.normalise``).

    M = cfg.n_mels, T = 1 + max(N, win) // hop. A clip shorter than one window
    is zero-padded to one window.
    """
    wave = _check_wave(wave, sr)
    win, hop, n_fft = frame_params(sr, cfg)
    if wave.shape[0] < win:
        wave = np.pad(wave, (0, win - wave.shape[0]))
    power = librosa.feature.melspectrogram(
        y=wave, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, window="hamming",
        center=True, pad_mode="constant", power=2.0, n_mels=cfg.n_mels, fmin=cfg.fmin,
        fmax=cfg.fmax)
    db = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=TOP_DB)
    if cfg.normalise == "fixed":
        return ((db - FIXED_DB_CENTRE) / FIXED_DB_SCALE).astype(np.float32)
    std = max(float(db.std()), STD_FLOOR)
    return ((db - db.mean()) / std).astype(np.float32)


def trim_silence(wave: np.ndarray, sr: int, top_db: float, margin_ms: float = 50.0) -> np.ndarray:
    """`wave` (N,) without its leading and trailing silence: the span of the frames (window
    and hop of :func:`frame_params` at the defaults, 32/10 ms) within `top_db` of the clip's
    loudest frame, widened by `margin_ms` on each side. An all-silent clip is kept whole.
    """
    wave = _check_wave(wave, sr)
    if wave.size == 0 or not np.any(wave):
        return wave
    win, hop, _ = frame_params(sr, AudioConfig())
    _, (start, end) = librosa.effects.trim(wave, top_db=top_db, frame_length=win, hop_length=hop)
    margin = int(round(sr * margin_ms / 1000.0))
    return wave[max(0, start - margin):min(wave.size, end + margin)]


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """`wave` (N,) cut or zero-padded at the end to exactly `n` samples."""
    if wave.shape[0] >= n:
        return wave[:n]
    return np.pad(wave, (0, n - wave.shape[0]))


def audio_segments(wave: np.ndarray, sr: int, cfg: AudioConfig) -> torch.Tensor:
    """float32 (S, 1, M, Ts): the clip's log-mel cut into S = cfg.n_segments equal-time parts.

    Segment s starts at frame floor(s * T / S), so it covers the s-th S-th of
    the clip, the span of video snippet s (see :mod:`mmer.features.sampling`).
    Every segment is Ts = ceil(T / S) frames long; the last one is padded with
    the clip's minimum (silence). With `cfg.trim_db` leading and trailing silence is
    cut first (:func:`trim_silence`). With `cfg.clip_seconds` the wave is then cut
    or zero-padded to that duration, so Ts is the same for every clip;
    otherwise Ts follows the clip's length.
    """
    wave = _check_wave(wave, sr)
    if cfg.n_segments < 1:
        raise BadInput(f"audio.n_segments must be positive, got {cfg.n_segments}")
    if cfg.trim_db is not None:
        wave = trim_silence(wave, sr, cfg.trim_db, cfg.trim_margin_ms)
    if cfg.clip_seconds is not None:
        wave = fit_length(wave, int(round(cfg.clip_seconds * sr)))
    mel = log_mel(wave, sr, cfg)
    n_frames, n_seg = mel.shape[1], cfg.n_segments
    seg_len = math.ceil(n_frames / n_seg)
    padded = np.pad(mel, ((0, 0), (0, seg_len)), constant_values=mel.min())
    starts = [s * n_frames // n_seg for s in range(n_seg)]
    segments = np.stack([padded[:, a:a + seg_len] for a in starts])[:, None]
    return torch.from_numpy(np.ascontiguousarray(segments))


EGEMAPS_DIM = 88


class Egemaps:
    """openSMILE eGeMAPSv02 functionals: ``Egemaps()(wave, sr)`` -> float32 (88,).

    The extended Geneva minimalistic acoustic parameter set (Eyben et al., 2016): pitch,
    jitter, shimmer, loudness, formants, spectral slope and their statistics over the whole
    clip, the usual hand-made descriptors of affect. Building one parses openSMILE's config
    files, so a worker builds it once and reuses it for every clip.
    """

    def __init__(self) -> None:
        import opensmile
        self.smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                     feature_level=opensmile.FeatureLevel.Functionals)

    def __call__(self, wave: np.ndarray, sr: int) -> torch.Tensor:
        """(88,) of mono `wave` (N,) at `sr` Hz. A clip too short for openSMILE's analysis
        windows (NaN features) raises ``ValueError``."""
        wave = _check_wave(wave, sr)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Segment too short": checked below
            values = self.smile.process_signal(wave, sr).to_numpy(dtype=np.float32).reshape(-1)
        if values.shape != (EGEMAPS_DIM,) or not np.all(np.isfinite(values)):
            raise BadInput(f"eGeMAPS: no finite features for a {wave.shape[0] / sr:.3f} s clip "
                             "(too short for openSMILE's analysis windows)")
        return torch.from_numpy(values.copy())
