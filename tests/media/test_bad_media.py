"""Every kind of bad media input raises DecodeError naming the file and the problem; odd media
(a long clip cut at the cap, a rotation tag, a stream without timestamps) decodes as it should."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import av
import numpy as np
import pytest

from mmer.media.decode import DecodeError, decode_clip, load_audio
from mmer.media.write import write_clip
from tests.helpers.bad_inputs import _tone
from tests.helpers.media import make_timed_clip
from tests.helpers.odd_media import FPS, _frames


def _expect(path: Path, problem: str, **kwargs) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_clip(path, **kwargs)
    message = str(info.value)
    assert path.name in message, message
    assert problem in message, message
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize("fixture, problem", [
    ("corrupt_mp4", "not a readable media container"),
    ("moovless_mp4", "not a readable media container"),
    ("truncated_mp4", "truncated"),  # by a decoder error or by the frame count, per cut point
    ("no_audio_mp4", "no audio stream"),
    ("zero_frame_mkv", "zero decoded video frames"),
])
def test_bad_file_kinds(request, fixture, problem):
    _expect(request.getfixturevalue(fixture), problem)


def test_missing_file(tmp_path):
    _expect(tmp_path / "absent.mp4", "cannot open")


def test_folder_instead_of_file(tmp_path):
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    _expect(folder, "cannot open")


def test_unreadable_file(tmp_path, lossless_clip, monkeypatch):
    path = tmp_path / "locked.mp4"
    path.write_bytes(lossless_clip.path.read_bytes())
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: let FFmpeg's open fail as it would
            def refuse(name, *args, **kwargs):
                raise PermissionError(errno.EACCES, "Permission denied", name)

            monkeypatch.setattr(av, "open", refuse)
        err = _expect(path, "cannot open")
        assert "Permission denied" in str(err)
    finally:
        path.chmod(0o600)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    _expect(path, "not a readable media container")


def test_wav_has_no_video_stream(sine_wav):
    _expect(sine_wav.path, "no video stream")


def test_load_audio_of_video_only_clip(no_audio_mp4):
    with pytest.raises(DecodeError, match=f"{no_audio_mp4.name}: no audio stream"):
        load_audio(no_audio_mp4)


def test_cut_on_a_packet_boundary_is_caught_by_the_frame_count(tmp_path):
    """A cut between two packets raises nothing in FFmpeg; the declared frame count catches it."""
    frames = np.random.default_rng(3).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
    whole = write_clip(tmp_path / "whole.mp4", frames, 15.0, faststart=True)
    with av.open(str(whole)) as container:
        positions = [p.pos for p in container.demux(video=0) if p.size and p.pos is not None]
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: positions[len(positions) // 2]])
    err = _expect(cut, "truncated: decoded", audio=False)
    assert "of 30 video frames" in str(err)


def test_garbage_inside_the_stream(tmp_path):
    """Noise over the middle of the media data: the file opens, the decoder then fails."""
    frames = np.random.default_rng(4).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
    whole = write_clip(tmp_path / "whole.mp4", frames, 15.0, faststart=True)
    data = bytearray(whole.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = np.random.default_rng(5).integers(0, 256, 2000, np.uint8).tobytes()
    broken = tmp_path / "noisy.mp4"
    broken.write_bytes(bytes(data))
    _expect(broken, "truncated or corrupt stream after", audio=False)


def test_bad_arguments_are_value_errors(lossless_clip):
    with pytest.raises(ValueError, match="max_seconds must be positive"):
        decode_clip(lossless_clip.path, max_seconds=0)


def test_a_long_clip_is_cut_at_the_cap_flagged_and_never_held_whole(odd_dir, one_thread):
    path = write_clip(odd_dir / "long.mp4", (f for f in _frames(900)), FPS, _tone(60.0), 16000)  # 60 s
    kept = []
    clip = decode_clip(path, max_seconds=30.0, pick=lambda pts, end: kept.append(len(pts)) or [0, len(pts) - 1])
    assert clip.truncated and kept == [450] and clip.frames.shape[0] == 2
    assert clip.audio.shape[0] == 30 * 16000


def test_rotation_tag_is_applied(odd_dir):
    frames = _frames(4)
    path = make_timed_clip(odd_dir / "phone.mp4", frames, [0, 100, 200, 300], 400, rotation=-90)
    clip = decode_clip(path, audio=False)
    assert clip.frames.shape == (4, 64, 48, 3)                 # turned a quarter clockwise
    np.testing.assert_array_equal(clip.frames, np.rot90(frames, -1, axes=(1, 2)))


def test_a_stream_without_timestamps_is_picked_by_count(odd_dir):
    """A raw H.264 stream has no pts: the picks fall back to frame counts."""
    import av
    path = odd_dir / "raw.h264"
    with av.open(str(path), "w", format="h264") as out:
        stream = out.add_stream("libx264", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, image in enumerate(_frames(20)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    clip = decode_clip(path, audio=False, pick=lambda pts, end: np.array([0, 5, 19]))
    assert clip.n_frames == 20 and clip.frame_index.tolist() == [0, 5, 19]
    np.testing.assert_allclose(clip.frames[:, 30, 30, 0], [0, 20, 76], atol=3)
