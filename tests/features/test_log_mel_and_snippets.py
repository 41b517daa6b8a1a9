"""Raw features: log-mel bins and segments, face-cropped video snippets."""
from __future__ import annotations

import librosa
import numpy as np
import pytest

from mmer.config import AudioConfig, VideoConfig
from mmer.features.audio import audio_segments, frame_params, log_mel
from mmer.features.video import HaarFaceDetector, centre_box, snippet_boxes, square_box, video_snippets
from mmer.media.decode import decode_clip

SR = 16000


def _sine(freq: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


# ------------------------------------------------------------------ audio


def test_frame_parameters_at_16k():
    assert frame_params(SR, AudioConfig()) == (512, 160, 512)
    assert frame_params(44100, AudioConfig()) == (1411, 441, 2048)


def test_log_mel_shape_and_normalisation(sine_wav):
    cfg = AudioConfig()
    mel = log_mel(sine_wav.wave, SR, cfg)
    assert mel.shape == (cfg.n_mels, 1 + SR // 160) and mel.dtype == np.float32
    assert mel.mean() == pytest.approx(0.0, abs=1e-4)
    assert mel.std() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("bin_index, offset", [(12, 0.0), (30, 0.2), (45, -0.2), (60, 0.0)])
def test_sine_peaks_in_the_mel_bin_with_the_nearest_centre(bin_index, offset):
    """A tone at (or a fifth of the way off) a mel centre peaks in that bin.

    Exactly between two centres the answer flips with the area-normalised
    filter heights, so tones there are not a fair test of "nearest".
    """
    cfg = AudioConfig(n_mels=64)
    centres = librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.fmin, fmax=SR / 2)[1:-1]
    step = centres[bin_index + 1] - centres[bin_index] if offset > 0 else \
        centres[bin_index] - centres[bin_index - 1]
    freq = centres[bin_index] + offset * step
    expected = int(np.argmin(np.abs(centres - freq)))
    assert expected == bin_index
    mel = log_mel(_sine(freq), SR, cfg)
    assert int(np.argmax(mel.mean(axis=1))) == expected


@pytest.mark.parametrize("wave", [np.zeros(SR, np.float32), np.zeros(10, np.float32),
                                  np.zeros(0, np.float32), _sine(440, seconds=0.005)],
                         ids=["silence", "ten-zeros", "empty", "5ms-tone"])
def test_silent_and_very_short_audio_are_finite(wave):
    mel = log_mel(wave, SR, AudioConfig())
    assert mel.shape[0] == 64 and mel.shape[1] >= 1
    assert np.all(np.isfinite(mel))
    if not wave.any():
        assert np.all(mel == 0)


def test_non_finite_audio_is_refused():
    wave = _sine(440)
    wave[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        log_mel(wave, SR, AudioConfig())


def test_segments_shape_and_equal_lengths():
    cfg = AudioConfig(n_segments=6)
    seg = audio_segments(_sine(440, seconds=1.23), SR, cfg)
    n_frames = 1 + int(1.23 * SR) // 160
    assert tuple(seg.shape) == (6, 1, 64, -(-n_frames // 6))
    assert seg.dtype.is_floating_point and bool(seg.isfinite().all())


def test_clip_seconds_gives_every_clip_the_same_shape():
    cfg = AudioConfig(clip_seconds=2.0)
    shapes = {tuple(audio_segments(_sine(440, seconds=s), SR, cfg).shape) for s in (0.3, 1.7, 3.1)}
    assert len(shapes) == 1


def test_segment_s_holds_the_s_th_sixth_of_the_clip():
    wave = np.zeros(int(3.0 * SR), np.float32)
    wave[SR: int(1.5 * SR)] = _sine(1000, seconds=0.5)  # only the third sixth (1.0-1.5 s) sounds
    seg = audio_segments(wave, SR, AudioConfig(n_segments=6)).numpy()   # (6, 1, 64, 51)
    loud = (seg[:, 0].mean(axis=1) > 0).sum(axis=1)                      # loud frames per segment
    assert seg.shape[3] == 51 and loud[2] >= 49
    # Elsewhere only the windows straddling an edge at 1.0 s or 1.5 s hear the tone.
    assert loud[[0, 4, 5]].tolist() == [0, 0, 0] and loud[1] <= 3 and loud[3] <= 3


# ------------------------------------------------------------------ video


def _banded_frames(n: int = 20, height: int = 48, width: int = 64) -> np.ndarray:
    """Red bands outside the centre square, blue inside: shows which region a crop took."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    frames[..., 0] = 200
    x0 = (width - height) // 2
    frames[:, :, x0:x0 + height] = (0, 0, 200)
    return frames


def _denormalise(x: np.ndarray, cfg: VideoConfig) -> np.ndarray:
    """(S, 3, L, H, W) normalised -> 0..255 values."""
    mean = np.asarray(cfg.mean)[None, :, None, None, None]
    std = np.asarray(cfg.std)[None, :, None, None, None]
    return (x * std + mean) * 255


def test_snippet_shape_and_normalisation():
    cfg = VideoConfig(n_snippets=3, snippet_len=4, size=16, face_detector="none")
    frames = np.full((9, 48, 64, 3), 128, np.uint8)
    out, misses = video_snippets(frames, cfg)
    assert tuple(out.shape) == (3, 3, 4, 16, 16) and misses == 0
    expected = (128 / 255 - np.asarray(cfg.mean)) / np.asarray(cfg.std)
    np.testing.assert_allclose(out.numpy().mean(axis=(0, 2, 3, 4)), expected, rtol=1e-5)


def test_no_face_found_falls_back_to_the_centre_crop_and_counts_misses():
    cfg = VideoConfig(n_snippets=6, snippet_len=4, size=24)
    out, misses = video_snippets(_banded_frames(), cfg, cropper=HaarFaceDetector())
    assert misses == 6
    pixels = _denormalise(out.numpy(), cfg)
    np.testing.assert_allclose(pixels[:, 2], 200, atol=1)    # blue everywhere: the centre square
    np.testing.assert_allclose(pixels[:, :2], 0, atol=1)


def test_face_detector_none_never_calls_the_detector():
    def refuse(frame):
        raise AssertionError("detector called with face_detector: none")

    _, misses = video_snippets(_banded_frames(), VideoConfig(face_detector="none", size=8), cropper=refuse)
    assert misses == 0


def test_detected_box_is_padded_squared_and_cropped():
    frames = np.zeros((8, 48, 64, 3), np.uint8)
    frames[:, 10:30, 20:40] = 255                       # a white 20x20 "face"
    cfg = VideoConfig(n_snippets=2, snippet_len=4, size=20, face_margin=0.0)
    out, misses = video_snippets(frames, cfg, cropper=lambda f: (20, 10, 20, 20))
    assert misses == 0
    np.testing.assert_allclose(_denormalise(out.numpy(), cfg), 255, atol=1)
    cfg.face_margin = 0.25                               # 30x30 box: a black rim around it
    out, _ = video_snippets(frames, cfg, cropper=lambda f: (20, 10, 20, 20))
    pixels = _denormalise(out.numpy(), cfg)
    assert pixels[..., 0, :].max() < 1 and pixels[..., 10, 10].min() > 254


def test_misses_take_the_last_good_box_and_leading_misses_the_first():
    frames = np.zeros((60, 48, 64, 3), np.uint8)
    answers = iter([None, (4, 4, 10, 10), None, (30, 20, 12, 12), None, None])
    cfg = VideoConfig(n_snippets=6, snippet_len=10, face_margin=0.0)
    boxes, misses = snippet_boxes(frames, np.arange(60).reshape(6, 10), cfg,
                                  cropper=lambda f: next(answers))
    first, second = (4, 4, 10, 10), (30, 20, 12, 12)
    assert misses == 4
    assert boxes == [first, first, first, second, second, second]


def test_square_box_stays_inside_the_frame():
    assert square_box((0, 0, 10, 20), 0.5, 48, 64) == (0, 0, 40, 40)      # pushed off the corner
    assert square_box((50, 30, 14, 18), 0.0, 48, 64) == (46, 30, 18, 18)  # shifted left and up
    assert square_box((20, 10, 10, 10), 0.5, 48, 64) == (15, 5, 20, 20)  # centre kept
    assert square_box((0, 0, 60, 60), 1.0, 48, 64) == (6, 0, 48, 48)      # capped at the short side
    assert centre_box(48, 64) == (8, 0, 48, 48)


def test_synthetic_clip_through_decode_and_snippets(synthetic_ravdess):
    clip = decode_clip(synthetic_ravdess / "Actor_02" / "01-01-03-01-01-01-02.mp4", audio=False)
    cfg = VideoConfig(size=32)
    out, misses = video_snippets(clip.frames, cfg)
    assert tuple(out.shape) == (6, 3, 16, 32, 32)
    assert 0 <= misses <= 6 and bool(out.isfinite().all())
