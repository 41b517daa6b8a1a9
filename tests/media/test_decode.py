"""Decoding real containers: exact frames, stream contents, truncation, audio loading."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from mmer.media.decode import decode_clip, load_audio
from mmer.media.write import write_audio


def _peak_hz(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(wave.size)))
    return float(np.fft.rfftfreq(wave.size, 1 / sr)[np.argmax(spectrum)])


def test_lossless_clip_decodes_to_the_exact_frames(lossless_clip):
    clip = decode_clip(lossless_clip.path)
    assert clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(clip.frames, lossless_clip.frames)
    assert clip.fps == pytest.approx(lossless_clip.fps)
    assert not clip.truncated


def test_lossless_clip_audio_is_the_tone_at_the_asked_rate(lossless_clip):
    clip = decode_clip(lossless_clip.path, sample_rate=8000)
    assert clip.sample_rate == 8000 and clip.audio.dtype == np.float32 and clip.audio.ndim == 1
    duration = len(lossless_clip.frames) / lossless_clip.fps
    # AAC pads the last 1024-sample frame: at most 1024 extra samples at the source rate.
    assert 0 <= clip.audio.size - duration * 8000 <= 1024 * 8000 / lossless_clip.sample_rate + 1
    assert _peak_hz(clip.audio, 8000) == pytest.approx(lossless_clip.tone_hz, abs=8000 / clip.audio.size)


def _codecs(path: Path) -> dict[str, str]:
    with av.open(str(path)) as container:
        return {s.type: s.codec_context.name for s in container.streams}


def test_synthetic_h264_aac_clip(synthetic_ravdess):
    path = synthetic_ravdess / "Actor_03" / "01-01-05-01-02-01-03.mp4"
    assert _codecs(path) == {"video": "h264", "audio": "aac"}
    clip = decode_clip(path)
    assert clip.frames.shape == (round(1.5 * 15), 48, 64, 3)
    assert clip.fps == pytest.approx(15.0)
    assert abs(clip.audio.size - 1.5 * 16000) <= 1024 * 16000 / 48000 + 1
    assert np.abs(clip.audio).max() > 0.05  # the tone is there


def test_streams_not_asked_for_are_none(synthetic_ravdess):
    path = synthetic_ravdess / "Actor_01" / "01-01-01-01-01-01-01.mp4"
    video_only = decode_clip(path, audio=False)
    audio_only = decode_clip(path, video=False)
    assert video_only.audio is None and video_only.frames.shape[0] == 22
    assert audio_only.frames is None and audio_only.audio.size > 0
    with pytest.raises(ValueError, match="video=True or audio=True"):
        decode_clip(path, video=False, audio=False)


def test_max_seconds_truncates_both_streams(lossless_clip):
    clip = decode_clip(lossless_clip.path, max_seconds=0.5)
    # Frames at t = i / 15 < 0.5 s: i = 0..7.
    np.testing.assert_array_equal(clip.frames, lossless_clip.frames[:8])
    assert clip.audio.size == 8000
    assert clip.truncated
    assert not decode_clip(lossless_clip.path, max_seconds=60.0).truncated


def test_no_audio_clip_decodes_video_alone(no_audio_mp4):
    clip = decode_clip(no_audio_mp4, audio=False)
    assert clip.frames.shape == (10, 48, 64, 3)


def test_silent_clip_gives_zeros(silent_mp4):
    clip = decode_clip(silent_mp4)
    assert clip.audio.size >= 16000
    assert np.abs(clip.audio).max() < 1e-4


def test_wav_round_trip_within_16_bit_quantisation(sine_wav):
    wave = load_audio(sine_wav.path, sine_wav.sample_rate)
    assert wave.shape == sine_wav.wave.shape and wave.dtype == np.float32
    assert np.abs(wave - sine_wav.wave).max() <= 1.01 / 32768


def test_stereo_is_averaged_and_resampled(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    left, right = 0.6 * np.sin(2 * np.pi * 500 * t), -0.2 * np.sin(2 * np.pi * 500 * t)
    path = write_audio(tmp_path / "stereo.flac", np.stack([left, right]), sr)
    wave = load_audio(path, 16000)
    assert abs(wave.size - 16000) <= 1
    # The channel mean is 0.2 sin: amplitude 0.2, frequency 500 Hz, phase kept.
    assert np.abs(wave[200:-200]).max() == pytest.approx(0.2, abs=0.005)
    expected = 0.2 * np.sin(2 * np.pi * 500 * np.arange(wave.size) / 16000)
    assert np.abs(wave - expected)[200:-200].max() < 0.005


@pytest.mark.shared
def test_real_flac_matches_its_48k_original(shared_data):
    """The 16 kHz FLACs were made from the 48 kHz WAVs; our resampled decode must agree.

    Measured: max |difference| 1.53e-5 (half a 16-bit step) on all four pairs,
    lengths equal or one sample apart. Asserted with 6x margin.
    """
    originals = sorted((shared_data / "ravdess-speech-48k-samples").glob("Actor_*/*.wav"))
    assert len(originals) >= 4
    channels = set()
    for wav in originals:
        flac = shared_data / "ravdess-speech-audio" / wav.parent.name / (wav.stem + ".flac")
        with av.open(str(wav)) as container:
            channels.add(container.streams.audio[0].codec_context.channels)
        ours, theirs = load_audio(wav, 16000), load_audio(flac, 16000)
        assert abs(ours.size - theirs.size) <= 1, wav.name
        n = min(ours.size, theirs.size)
        assert np.abs(ours[:n] - theirs[:n]).max() < 1e-4, wav.name
    assert channels == {1, 2}  # the mono and the stereo path are both exercised
